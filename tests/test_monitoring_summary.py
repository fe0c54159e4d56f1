"""The monthly summary's figures equal a direct count of the rows; the chart carries the same numbers;
a rubric change never rewrites a past assessment."""
import datetime as dt
import re

import sqlalchemy as sa

from callrec_plugin import monitoring_summary, rubric, spot_checks
from callrec_plugin.models import Assessment, AssessmentScore, SpotCheck, SpotCheckDraw
from tests.conftest import valid_csrf_token
from tests.factories import add_recording

SEPTEMBER = dt.datetime(2026, 9, 8, 10, tzinfo=dt.timezone.utc)
OCTOBER = dt.datetime(2026, 10, 8, 10, tzinfo=dt.timezone.utc)
KEYS = [key for key, _ in rubric.DEFAULT_CRITERIA]


def post(app, client, url, data):
    token = valid_csrf_token(app, client)
    return client.post(url, data={"csrf_token": token, "callrec-assess-csrf_token": token, **data})


def assess(app, client, recording_id, scores):
    data = {f"callrec-assess-score-{key}": score for key, score in zip(KEYS, scores)}
    assert post(app, client, f"/callrec/recordings/{recording_id}/assessments", data).status_code == 302


def seed(app, db_session, login):
    for start in (SEPTEMBER, OCTOBER):
        for staff, count in (("reception", 5), ("ravi", 2)):
            for n in range(count):
                add_recording(db_session, started_at=start + dt.timedelta(hours=n), staff_user_ref=staff,
                              staff_name=staff.capitalize(), patient_ref="pat2")
    with app.test_request_context():
        for month in ("2026-09", "2026-10"):
            spot_checks.draw("pA", month)
        db_session.commit()
    checks = db_session.scalars(sa.select(SpotCheck).order_by(SpotCheck.id)).all()
    manager = login("manager")
    patterns = [
        ["meets"] * 6,
        ["partly", "meets", "does_not_meet", "meets", "not_applicable", "meets"],
        ["does_not_meet", "partly", "meets", "meets", "meets", "partly"],
        ["meets", "not_applicable", "meets", "partly", "meets", "meets"],
        ["meets"] * 5 + ["does_not_meet"],
    ]
    for check, scores in zip(checks, patterns):  # five of the ten drawn checks done
        assess(app, manager, check.recording_id, scores)
    return checks


def direct_counts(db_session):
    criteria = {}
    for key, score, number in db_session.execute(sa.select(
            AssessmentScore.criterion_key, AssessmentScore.score, sa.func.count()).group_by(
            AssessmentScore.criterion_key, AssessmentScore.score)):
        criteria.setdefault(key, {})[score] = number
    outcomes = {}
    for staff, outcome, number in db_session.execute(sa.select(
            Assessment.staff_user_ref, Assessment.outcome, sa.func.count()).group_by(
            Assessment.staff_user_ref, Assessment.outcome)):
        outcomes.setdefault(staff, {})[outcome] = number
    months = {}
    for month, drawn, done in db_session.execute(sa.select(
            SpotCheckDraw.month, sa.func.count(SpotCheck.id), sa.func.count(SpotCheck.assessment_id)).join(
            SpotCheck, SpotCheck.draw_id == SpotCheckDraw.id).group_by(SpotCheckDraw.month)):
        months[month] = (drawn, done)
    return criteria, outcomes, months


def test_summary_numbers_equal_a_direct_count(app, db_session, login):
    checks = seed(app, db_session, login)
    assert len(checks) == 10  # 3 + 2 per month
    criteria, outcomes, months = direct_counts(db_session)
    with app.test_request_context():
        summary = monitoring_summary.summarise("pA", now=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc))
    assert {row.key: row.counts for row in summary.criteria} == criteria
    assert [row.key for row in summary.criteria] == KEYS  # in the rubric's order
    assert {row.ref: row.outcomes for row in summary.staff if row.outcomes} == outcomes
    assert {row.month: (row.drawn, row.done) for row in summary.months} == months
    assert {row.month: row.target for row in summary.months} == {"2026-09": 6, "2026-10": 6}  # 3 x 2 staff
    per_staff = {row.ref: (row.drawn, row.done) for row in summary.staff}
    assert sum(d for d, _ in per_staff.values()) == 10 and sum(d for _, d in per_staff.values()) == 5
    # an assessment twelve months old or more drops out of the window
    with app.test_request_context():
        later = monitoring_summary.summarise("pA", now=dt.datetime(2027, 12, 1, tzinfo=dt.timezone.utc))
    assert later.criteria == [] and later.months == []


def test_the_page_table_and_chart_show_the_same_numbers(app, db_session, login):
    seed(app, db_session, login)
    criteria, _outcomes, _months = direct_counts(db_session)
    page = login("owner").get("/callrec/monitoring-summary")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script" not in html and "cdn" not in html.lower()
    labels = dict(rubric.DEFAULT_CRITERIA)
    names = {"meets": "Meets", "partly": "Partly", "does_not_meet": "Does not meet"}
    for key, counts in criteria.items():
        row = re.search(rf"<th scope=\"row\">{re.escape(labels[key])}</th>((?:<td>\d+</td>)+)</tr>", html)
        assert row, key
        cells = [int(n) for n in re.findall(r"<td>(\d+)</td>", row.group(1))]
        assert cells == [counts.get(s, 0) for s in ("meets", "partly", "does_not_meet", "not_applicable")], key
        for score, name in names.items():  # each bar segment carries the table's number
            if counts.get(score):
                assert f"<title>{labels[key]}: {name} {counts[score]}</title>" in html, (key, score)


def test_rubric_changes_never_rewrite_past_assessments(app, db_session, login):
    call, later_call = (add_recording(db_session, staff_user_ref="reception").id for _ in range(2))
    manager = login("manager")
    assess(app, manager, call, ["meets"] * 6)
    assert post(app, manager, "/callrec/rubric", {"op": "reword", "key": "greeting",
                                                  "label": "Warm greeting, practice and own name"}).status_code == 302
    assert post(app, manager, "/callrec/rubric", {"op": "retire", "key": "accuracy"}).status_code == 302
    assert post(app, manager, "/callrec/rubric", {"op": "add", "label": "Call closed politely"}).status_code == 302
    with app.test_request_context():
        current = rubric.criteria("pA")
    assert [c.label for c in current][0] == "Warm greeting, practice and own name"
    assert "Accuracy of information" not in [c.label for c in current] and current[-1].label == "Call closed politely"
    data = {f"callrec-assess-score-{c.key}": "meets" for c in current}
    assert post(app, manager, f"/callrec/recordings/{later_call}/assessments", data).status_code == 302
    old, new = (db_session.scalars(sa.select(AssessmentScore.criterion_label).join(
        Assessment, Assessment.id == AssessmentScore.assessment_id).where(Assessment.recording_id == rid)
        .order_by(AssessmentScore.position)).all() for rid in (call, later_call))
    assert old == [label for _, label in rubric.DEFAULT_CRITERIA]  # as worded when assessed
    assert new == [c.label for c in current]
    page = login("reception").get("/callrec/assessments").get_data(as_text=True)
    assert "Accuracy of information" in page and "Warm greeting, practice and own name" in page


def test_an_unscored_criterion_is_refused(app, db_session, login):
    call = add_recording(db_session, staff_user_ref="reception").id
    data = {f"callrec-assess-score-{key}": "meets" for key in KEYS[:-1]}
    response = post(app, login("manager"), f"/callrec/recordings/{call}/assessments", data)
    assert response.status_code == 400 and "Outcome and next steps agreed" in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Assessment)) == 0
