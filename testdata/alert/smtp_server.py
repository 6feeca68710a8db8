#!/usr/bin/env python3
"""A real SMTP server for the alert tests (aiosmtpd), on 127.0.0.1.

Every accepted message is written to OUTDIR as N.eml, with N.json holding the envelope (mail_from,
rcpt_tos), whether it came over TLS, its subject and its decoded MIME parts. Prints "READY <port>"
once it listens.

  smtp_server.py OUTDIR [--port P] [--starttls CERT KEY] [--auth USER:PASS] [--reject-rcpt SUBSTR]
"""
import argparse
import email
import email.policy
import warnings
import json
import logging
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Saver:
    def __init__(self, outdir, reject):
        self.outdir = outdir
        self.reject = reject
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject in address:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.outdir, str(self.n))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        parts = [{"type": p.get_content_type(), "body": p.get_content()}
                 for p in msg.walk() if not p.is_multipart()]
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "tls": session.ssl is not None, "subject": msg["subject"],
                       "content_type": msg.get_content_type(), "parts": parts}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


def main():
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth")
    ap.add_argument("--reject-rcpt")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    kwargs = {}
    if a.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.starttls)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.auth:
        user, password = a.auth.split(":", 1)

        def check(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and \
                auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=check, auth_required=True,
                      auth_require_tls=bool(a.starttls))
    port = a.port
    if port == 0:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    controller = Controller(Saver(a.outdir, a.reject_rcpt), hostname="127.0.0.1", port=port,
                            server_hostname="localhost", **kwargs)
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
