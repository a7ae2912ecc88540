"""xbtest: test harness for mod_xmpp_bridge (Apache httpd BOSH connection manager).

Modules:
  ca       TestCA            a throwaway CA (openssl CLI) issuing server certificates
  ports    free_port()       a free TCP port on 127.0.0.1
  prosody  Prosody           a throwaway Prosody (c2s + its own BOSH) in a temp dir
  apache   Apache            a throwaway apache2 ServerRoot (any MPM), optionally with the module
  bosh     BoshClient        a Strophe.js-like BOSH client (SCRAM-SHA-1/PLAIN, long-poll mode)

Everything listens on 127.0.0.1 only; every process started is stopped by its PID with a bounded
stop (SIGTERM, wait, SIGKILL).
"""
