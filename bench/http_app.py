"""The demo host as gunicorn serves it for the HTTP bench (``gunicorn "bench.http_app:create()"``), with two
references beside callrec's audio: gunicorn's own ``send_file`` of the same plaintext (``wsgi.file_wrapper``:
sendfile for a whole file, but it cannot seek, so a Range is read and discarded up to its start) and a
seekable ``send_file`` (Werkzeug's FileWrapper: a Range seeks). Both need the same sign-in as the audio.
The state directory and database come from the environment the bench sets."""
import os

from flask import Response, request, send_file
from flask_login import login_required
from werkzeug.utils import send_file as werkzeug_send_file


def create():
    from bench.demoapp import add_decision_only_route, demo_config
    from examples.practice_host import create_app

    state = os.environ["CALLREC_BENCH_STATE"]
    app = create_app(demo_config(state, os.environ["CALLREC_BENCH_DB"]))
    plain = os.path.join(state, "plain.wav")

    @app.route("/bench/plain")
    @login_required
    def plain_sendfile():
        return send_file(plain, mimetype="audio/wav", conditional=True)

    @app.route("/bench/plain-seekable")
    @login_required
    def plain_seekable():
        environ = {key: value for key, value in request.environ.items() if key != "wsgi.file_wrapper"}
        return werkzeug_send_file(plain, environ, mimetype="audio/wav", conditional=True)

    add_decision_only_route(app, plain)

    @app.route("/bench/plain-copy")
    @login_required
    def plain_copy():
        # The plaintext read and written in chunks of ?chunk= bytes (default one CRE1 segment): the user-space
        # copy a decrypting stream cannot avoid, without the decryption.
        chunk = int(request.args.get("chunk", 65536))

        def chunks():
            with open(plain, "rb") as f:
                while data := f.read(chunk):
                    yield data

        return Response(chunks(), mimetype="audio/wav", direct_passthrough=True,
                        headers={"Content-Length": str(os.path.getsize(plain))})

    return app
