"""What a BOSH test talks to (one class for the integration and the conformance suites)."""


class Target:
    """A BOSH service under test.

    .name: module | prosody | proxy | ejabberd; .bosh_url; .server: the XMPP server object
    (Prosody or ejabberd; .prosody is the same object, the name the integration tests use, where
    it always is Prosody); .domain, .c2s_port (the server's); .apache (None when no Apache
    answers); .mpm; .ca; .max_wait (XmppBridgeMaxWait / the server's own cap).
    Conformance extras (None when not set): .inactivity_config (the inactivity the service was
    configured with), .see_other_url (a BOSH URL that must answer see-other-uri) and
    .see_other_uri (where it must point), .unreachable_domain (a served domain whose XMPP server
    is down)."""

    def __init__(self, name, bosh_url, server, apache=None, mpm=None, ca=None, max_wait=30,
                 inactivity_config=None, see_other_url=None, see_other_uri=None,
                 unreachable_domain=None):
        self.name = name
        self.bosh_url = bosh_url
        self.server = self.prosody = server
        self.domain = server.domain
        self.c2s_port = getattr(server, "c2s_port", None)
        self.apache = apache
        self.mpm = mpm if mpm is not None else (apache.mpm if apache else None)
        self.ca = ca
        self.max_wait = max_wait
        self.inactivity_config = inactivity_config
        self.see_other_url = see_other_url
        self.see_other_uri = see_other_uri
        self.unreachable_domain = unreachable_domain

    @property
    def is_module(self):
        return self.name == "module"

    @property
    def is_prosody(self):
        """Prosody's mod_bosh answers (directly or behind the proxy)."""
        return self.name in ("prosody", "proxy")

    def jid(self, user):
        return "%s@%s" % (user, self.domain)

    def __repr__(self):
        return "<Target %s mpm=%s %s>" % (self.name, self.mpm, self.bosh_url)
