"""``python -m bench.http_purge STATE DATABASE_URL``: one purge run against the HTTP bench's installation, in a
process of its own (the load test's players must not share its interpreter). Prints the purged count."""
import sys


def main(state, database_url):
    from bench.demoapp import demo_config
    from callrec_plugin import purge
    from examples.practice_host import create_app

    app = create_app(demo_config(state, database_url))
    with app.app_context():
        report = purge.purge()
    print(getattr(report, "purged", report))


if __name__ == "__main__":
    main(*sys.argv[1:3])
