"""The demo PMS's own tables (prefix ``host_``), on Flask-SQLAlchemy's metadata.

callrec's tables live on callrec's own metadata, so ``db.create_all()`` here creates only these and
``flask callrec db upgrade`` creates callrec's.
"""
import datetime as dt

import sqlalchemy as sa
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("owner", "manager", "complaint_handler", "trainer", "staff", "dpo")
ROLE_LABELS = {
    "owner": "Practice owner",
    "manager": "Practice manager",
    "complaint_handler": "Complaint handler",
    "trainer": "Trainer",
    "staff": "Reception",
    "dpo": "Data protection lead",
}
# Roles that may close a complaint in the PMS (a complaint handler only the complaints they handle).
COMPLAINT_CLOSERS = ("owner", "manager")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


db = SQLAlchemy(model_class=Base)


def utcnow():
    """Naive UTC: the host stores UTC without a zone (SQLite keeps none anyway)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Practice(db.Model):
    __tablename__ = "host_practices"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # "p1"
    name: Mapped[str] = mapped_column(sa.String(120))
    phone_e164: Mapped[str | None] = mapped_column(sa.String(20))
    address: Mapped[str | None] = mapped_column(sa.String(200))


class Staff(UserMixin, db.Model):
    __tablename__ = "host_staff"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    full_name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[str] = mapped_column(sa.String(32))
    practice_id: Mapped[str] = mapped_column(sa.ForeignKey("host_practices.id"), index=True)
    extension: Mapped[str | None] = mapped_column(sa.String(8))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)

    practice: Mapped[Practice] = relationship()

    __table_args__ = (sa.CheckConstraint("role IN ({})".format(", ".join(f"'{r}'" for r in ROLES)), name="role"),)

    @property
    def ref(self):
        """The stable id callrec keeps in its audit trail."""
        return f"staff-{self.id}"

    @property
    def role_label(self):
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def is_active(self):
        return bool(self.active)

    def may_close(self, complaint):
        if self.practice_id != complaint.practice_id or complaint.status != "open":
            return False
        if self.role in COMPLAINT_CLOSERS:
            return True
        return self.role == "complaint_handler" and complaint.handler_id == self.id


class Patient(db.Model):
    __tablename__ = "host_patients"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # "pat-0001"
    practice_id: Mapped[str] = mapped_column(sa.ForeignKey("host_practices.id"), index=True)
    title: Mapped[str | None] = mapped_column(sa.String(12))
    first_name: Mapped[str] = mapped_column(sa.String(60))
    last_name: Mapped[str] = mapped_column(sa.String(60), index=True)
    date_of_birth: Mapped[dt.date] = mapped_column(sa.Date)
    email: Mapped[str | None] = mapped_column(sa.String(120))

    phones: Mapped[list["PatientPhone"]] = relationship(
        back_populates="patient", order_by="PatientPhone.id", cascade="all, delete-orphan"
    )

    @property
    def name(self):
        return f"{self.first_name} {self.last_name}"

    @property
    def display_name(self):
        return f"{self.title} {self.name}" if self.title else self.name

    def age(self, today=None):
        today = today or dt.date.today()
        dob = self.date_of_birth
        return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


class PatientPhone(db.Model):
    __tablename__ = "host_patient_phones"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(sa.ForeignKey("host_patients.id"), index=True)
    e164: Mapped[str] = mapped_column(sa.String(20), index=True)
    label: Mapped[str] = mapped_column(sa.String(20), default="mobile")  # mobile, home, work

    patient: Mapped[Patient] = relationship(back_populates="phones")

    @property
    def national(self):
        """+447700900123 -> 07700 900123; +441632960123 -> 01632 960123 (display only)."""
        if self.e164.startswith("+44") and len(self.e164) == 13:
            digits = "0" + self.e164[3:]
            return f"{digits[:5]} {digits[5:]}"
        return self.e164


class Complaint(db.Model):
    __tablename__ = "host_complaints"

    id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # "cmp-001"
    practice_id: Mapped[str] = mapped_column(sa.ForeignKey("host_practices.id"), index=True)
    patient_id: Mapped[str | None] = mapped_column(sa.ForeignKey("host_patients.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(8), default="open")  # open, closed
    handler_id: Mapped[int | None] = mapped_column(sa.ForeignKey("host_staff.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(sa.DateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime)
    closed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("host_staff.id"))

    patient: Mapped[Patient | None] = relationship()
    handler: Mapped[Staff | None] = relationship(foreign_keys=[handler_id])
    closed_by: Mapped[Staff | None] = relationship(foreign_keys=[closed_by_id])

    __table_args__ = (sa.CheckConstraint("status IN ('open', 'closed')", name="status"),)
