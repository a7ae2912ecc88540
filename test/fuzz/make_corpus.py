#!/usr/bin/env python3
"""Writes the seed corpora under test/fuzz/corpus/<target>/ (checked in; rerun after changing
a harness's input format). The seeds are what real peers send: Strophe.js / Converse.js BOSH
bodies, Prosody and ejabberd c2s transcripts (as seen by our integration tests), SCRAM
exchanges from RFC 5802 / RFC 7677 and ones computed here for the harness's fixed nonce,
JWKs and tokens signed with the harnesses' fixed key, and handler->daemon frames as the glue
writes them. Each file is named after what it holds.

Usage: test/fuzz/make_corpus.py            (from anywhere)
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

HB = "http://jabber.org/protocol/httpbind"
STREAMS = "http://etherx.jabber.org/streams"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- BOSH bodies
SID = "1a9f3c2e7b5d4e6f8a0b1c2d3e4f5a6b"
STROPHE = {
    "strophe_create": "<body rid='1573741820' xmlns='%s' to='localhost' xml:lang='en' "
                      "wait='60' hold='1' content='text/xml; charset=utf-8' ver='1.6' "
                      "xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>" % HB,
    "strophe_auth_scram": "<body rid='1573741821' xmlns='%s' sid='%s'><auth xmlns='%s' "
                          "mechanism='SCRAM-SHA-1'>biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM"
                          "</auth></body>" % (HB, SID, SASL),
    "strophe_response": "<body rid='1573741822' xmlns='%s' sid='%s'><response xmlns='%s'>"
                        "Yz1iaXdzLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdMM3JmY05IWUpZMVpWdldWczdq"
                        "LHA9djBYOHYzQnoyVDBDSkdiSlF5RjBYK0hJNFRzPQ==</response></body>"
                        % (HB, SID, SASL),
    "strophe_restart": "<body rid='1573741823' xmlns='%s' sid='%s' to='localhost' "
                       "xml:lang='en' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>"
                       % (HB, SID),
    "strophe_bind": "<body rid='1573741824' xmlns='%s' sid='%s'><iq type='set' "
                    "id='_bind_auth_2' xmlns='jabber:client'><bind xmlns='%s'><resource>"
                    "converse.js-61718045</resource></bind></iq></body>" % (HB, SID, BIND),
    "converse_initial": "<body rid='1573741825' xmlns='%s' sid='%s'><iq type='get' "
                        "id='a1b2' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/>"
                        "</iq><presence xmlns='jabber:client'><priority>0</priority><c "
                        "xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
                        "node='https://conversejs.org' ver='Hxbsr5fazs62i+O0GxIXf2OEDNs='/>"
                        "</presence><iq type='get' from='user@localhost/converse.js' "
                        "to='localhost' id='d1' xmlns='jabber:client'><query xmlns="
                        "'http://jabber.org/protocol/disco#info'/></iq></body>" % (HB, SID),
    "converse_message": "<body rid='1573741826' xmlns='%s' sid='%s'><message from="
                        "'user@localhost/converse.js' to='bob@localhost' type='chat' "
                        "id='0c3e' xmlns='jabber:client'><body>Hi &amp; &lt;bye&gt; \u00e9 "
                        "\U0001F600</body><active xmlns='http://jabber.org/protocol/chatstates'"
                        "/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns="
                        "'urn:xmpp:sid:0' id='0c3e'/></message></body>" % (HB, SID),
    "converse_mam": "<body rid='1573741827' xmlns='%s' sid='%s'><iq type='set' id='m1' "
                    "xmlns='jabber:client'><query xmlns='urn:xmpp:mam:2' queryid='q1'><x "
                    "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
                    "type='hidden'><value>urn:xmpp:mam:2</value></field></x><set "
                    "xmlns='http://jabber.org/protocol/rsm'><max>50</max><before></before>"
                    "</set></query></iq></body>" % (HB, SID),
    "poll_empty": "<body rid='1573741828' xmlns='%s' sid='%s'/>" % (HB, SID),
    "terminate": "<body rid='1573741829' xmlns='%s' sid='%s' type='terminate'><presence "
                 "xmlns='jabber:client' type='unavailable'/></body>" % (HB, SID),
    "ack_pause": "<body rid='1573741830' xmlns='%s' sid='%s' ack='1573741829' pause='60' "
                 "key='7a8b9c' newkey='1d2e3f'/>" % (HB, SID),
    "prefixed_body": "<b:body xmlns:b='%s' xmlns='urn:x' xmlns:s='%s' rid='9'><a/><s:features/>"
                     "<p:q xmlns:p='urn:p'><p:r/></p:q></b:body>" % (HB, STREAMS),
    "prefix_from_body": "<body rid='1' xmlns='%s' xmlns:x='urn:x' xmlns:xmpp='urn:xmpp:xbosh'>"
                        "<m xmlns='jabber:client' x:a='1'><x:y/></m><xmpp:z/></body>" % HB,
    "xml_decl_bom": "\ufeff<?xml version='1.0' encoding='UTF-8'?>\n<body rid='2' xmlns='%s' "
                    "route='xmpp:example.org:5222' from='u@example.org' stream='s1'/>" % HB,
    "cdata": "<body rid='3' xmlns='%s'><message xmlns='jabber:client'><body><![CDATA[<x/> & "
             "]]></body></message>\n  <presence/></body>" % HB,
    "doctype": "<!DOCTYPE body [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><body rid='1' "
               "xmlns='%s'>&b;</body>" % HB,
    "comment_pi": "<body rid='1' xmlns='%s'><!-- c --><?pi x?></body>" % HB,
    "rid_max": "<body rid='9007199254740991' xmlns='%s' wait='4294967295' hold='0'/>" % HB,
    "deep": "<body rid='4' xmlns='%s'>%s%s</body>" % (HB, "<a>" * 9, "</a>" * 9),
    "legacy_no_ver": "<body content='text/xml; charset=utf-8' hold='1' rid='1573741820' "
                     "to='localhost' wait='60' xml:lang='en' xmlns='%s'/>" % HB,
}


def bosh_body():
    for name, body in STROPHE.items():
        write("bosh_body", name, body)


# --------------------------------------------------------------------------- server streams
PROSODY_HEADER = ("<?xml version='1.0'?><stream:stream xmlns:stream='%s' xml:lang='en' "
                  "id='5d2b52a5-4c2b-4f4b-9a07-2b6c1c3f1e77' from='localhost' version='1.0' "
                  "xmlns='jabber:client'>" % STREAMS)
EJABBERD_HEADER = ("<?xml version='1.0'?><stream:stream id='11583624390431541384' "
                   "version='1.0' xml:lang='en' xmlns:stream='%s' from='localhost' "
                   "xmlns='jabber:client'>" % STREAMS)
FEAT_STARTTLS = ("<stream:features><starttls xmlns='%s'><required/></starttls>"
                 "</stream:features>" % TLS)
FEAT_SASL_PROSODY = ("<stream:features><mechanisms xmlns='%s'><mechanism>SCRAM-SHA-1</mechanism>"
                     "<mechanism>PLAIN</mechanism></mechanisms></stream:features>" % SASL)
FEAT_SASL_EJABBERD = ("<stream:features><c xmlns='http://jabber.org/protocol/caps' "
                      "hash='sha-1' node='http://www.process-one.net/en/ejabberd/' "
                      "ver='kXD9jNXMB3gSV6oYDjfv3uLc6Ls='/><mechanisms xmlns='%s'><mechanism>"
                      "PLAIN</mechanism><mechanism>SCRAM-SHA-256</mechanism><mechanism>"
                      "SCRAM-SHA-1</mechanism><mechanism>X-OAUTH2</mechanism></mechanisms>"
                      "<register xmlns='http://jabber.org/features/iq-register'/>"
                      "</stream:features>" % SASL)
FEAT_BIND_PROSODY = ("<stream:features><bind xmlns='%s'><required/></bind><session xmlns='%s'>"
                     "<optional/></session><c xmlns='http://jabber.org/protocol/caps' "
                     "hash='sha-1' node='http://prosody.im' ver='NXS3nh7/v8b7pHFQpNY0kUy+bHs='/>"
                     "<sm xmlns='urn:xmpp:sm:3'><optional/></sm><csi xmlns='urn:xmpp:csi:0'/>"
                     "</stream:features>" % (BIND, SESSION))
FEAT_BIND_OLD = "<stream:features><bind xmlns='%s'/><session xmlns='%s'/></stream:features>" % (
    BIND, SESSION)
STANZAS = [
    "<iq type='result' id='_bind_auth_2' to='user@localhost/converse.js'><bind xmlns='%s'><jid>"
    "user@localhost/converse.js</jid></bind></iq>" % BIND,
    "<message from='bob@localhost/phone' to='user@localhost' type='chat' id='m1'><body>Hi "
    "&amp; &lt;there&gt; \u00e9 \U0001F600</body><active xmlns="
    "'http://jabber.org/protocol/chatstates'/></message>",
    "<presence from='bob@localhost/phone' to='user@localhost'><show>away</show><c xmlns="
    "'http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>",
    "<iq xmlns='jabber:client' type='get' id='ping1' from='localhost'><ping xmlns='urn:xmpp:ping'"
    "/></iq>",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<message id='c'><body><![CDATA[<not-an-element/> & more]]></body></message>",
]
STREAM_ERROR = ("<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text>"
                "</stream:error></stream:stream>")


def framer():
    # byte 0 mode (bit 0 reset mode, bit 1 small element limit, bit 2 small depth), 1-2 seed
    post_tls = PROSODY_HEADER + FEAT_SASL_PROSODY
    streams = {
        "prosody_pre_tls": PROSODY_HEADER + FEAT_STARTTLS,
        "prosody_session": post_tls + "".join(STANZAS) + " \n\t " + STREAM_ERROR,
        "ejabberd_session": EJABBERD_HEADER + FEAT_SASL_EJABBERD + "".join(STANZAS[:3])
                            + "</stream:stream>",
        "restart_after_success": PROSODY_HEADER + FEAT_SASL_PROSODY + "<success xmlns='%s'/>"
                                 % SASL + PROSODY_HEADER + FEAT_BIND_PROSODY + STANZAS[0],
        "proceed_then_garbage": PROSODY_HEADER + FEAT_STARTTLS + "<proceed xmlns='%s'/>" % TLS
                                + "\x16\x03\x03\x00\x02\x02\x28",
        "doctype_laughs": "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY "
                          "lol2 '&lol;&lol;&lol;&lol;'>]>" + PROSODY_HEADER + "<a>&lol2;</a>",
        "wrong_ns": "<stream:stream xmlns='jabber:server' xmlns:stream='%s' version='1.0'>"
                    % STREAMS,
        "text_at_top": PROSODY_HEADER + "hello",
        "destroy": PROSODY_HEADER + FEAT_SASL_PROSODY + "<destroy/>" + STANZAS[1],
        "prefixed": PROSODY_HEADER + "<db:result xmlns:db='jabber:server:dialback'/>"
                    "<foo:bar xmlns:foo='urn:foo'><foo:baz/></foo:bar><stream:features/>",
    }
    for i, (name, s) in enumerate(sorted(streams.items())):
        for mode in (0, 1, 2, 6):
            write("xmpp_framer", "%s_m%d" % (name, mode), bytes([mode, i, 7 * i + 1])
                  + s.encode("utf-8"))


def xmpp_conn():
    # byte 0: bit 0 STARTTLS (canned header+features unless bit 1), bit 2 small stanza limit
    plain = PROSODY_HEADER + FEAT_SASL_PROSODY + "".join(STANZAS) + STREAM_ERROR
    seeds = {
        "plain_session_m0": bytes([0, 1, 2]) + plain.encode(),
        "plain_small_limit_m4": bytes([4, 3, 4]) + plain.encode(),
        "plain_ejabberd_m0": bytes([0, 9, 9]) + (EJABBERD_HEADER + FEAT_SASL_EJABBERD
                                                + STANZAS[1] + "</stream:stream>").encode(),
        "plain_old_server_m0": bytes([0, 5, 5]) + ("<?xml version='1.0'?><stream:stream "
                                                   "xmlns='jabber:client' xmlns:stream='%s' "
                                                   "from='localhost'>" % STREAMS).encode(),
        "plain_not_features_m0": bytes([0, 2, 2]) + (PROSODY_HEADER + STANZAS[1]).encode(),
        "tls_proceed_m1": bytes([1, 1, 1]) + ("<proceed xmlns='%s'/>" % TLS).encode()
                          + b"\x16\x03\x03\x00\x31\x02\x00\x00\x2d\x03\x03" + b"\x00" * 40,
        "tls_failure_m1": bytes([1, 2, 3]) + ("<failure xmlns='%s'/></stream:stream>"
                                              % TLS).encode(),
        "tls_stream_error_m1": bytes([1, 4, 4]) + STREAM_ERROR.encode(),
        "tls_forged_see_other_host_m1": bytes([1, 6, 6]) + (
            "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
            "evil.example:5222</see-other-host></stream:error>").encode(),
        "tls_injected_after_proceed_m1": bytes([1, 0, 0]) + (
            "<proceed xmlns='%s'/>" % TLS + PROSODY_HEADER + FEAT_SASL_PROSODY).encode(),
        "tls_full_m3": bytes([3, 8, 8]) + (PROSODY_HEADER + FEAT_STARTTLS
                                           + "<proceed xmlns='%s'/>" % TLS).encode()
                       + b"\x15\x03\x03\x00\x02\x02\x28",
        "tls_no_starttls_m3": bytes([3, 1, 9]) + (PROSODY_HEADER + FEAT_SASL_PROSODY).encode(),
        "destroy_m0": bytes([0, 3, 1]) + (PROSODY_HEADER + FEAT_SASL_PROSODY
                                          + "<destroy/><presence/>").encode(),
    }
    for name, data in seeds.items():
        write("xmpp_conn", name, data)


# --------------------------------------------------------------------------- IPC frames
MAGIC = 0x31524258


def frame(ftype, aux, payload):
    return struct.pack("=IIII", MAGIC, ftype, aux, len(payload)) + payload


def ipc_reader():
    meta = b"127.0.0.1".ljust(64, b"\0") + struct.pack("=II", 0, 0)
    body = STROPHE["strophe_create"].encode()
    req = frame(1, 0, meta + body)
    user_meta = b"::1".ljust(64, b"\0") + struct.pack("=II", 1, 5)
    req_user = frame(1, 0, user_meta + b"alice" + STROPHE["converse_message"].encode())
    prebind_meta = b"10.0.0.7".ljust(64, b"\0") + struct.pack("=II", 1, 0)
    prebind = frame(5, 0, prebind_meta + b"example.org\0alice\0alice@example.org\0alice\0\0")
    release = frame(2, 0, b"")
    term = frame(3, 0, SID.encode())
    creds = frame(6, 0, b"alice@example.org")
    logout = frame(7, 0, b"alice")
    resp = frame(4, 200, STROPHE["poll_empty"].encode())
    # byte 0: mode (bits 0-1) | limit (bits 2-3) << 2 | n (bits 4-7) << 4 for strings
    lim = 3 << 2
    write("ipc_reader", "raw_request", bytes([0 | lim, 1, 2]) + req)
    write("ipc_reader", "raw_request_site_user", bytes([0 | lim, 3, 4]) + req_user)
    write("ipc_reader", "raw_prebind", bytes([0 | lim, 5, 6]) + prebind)
    write("ipc_reader", "raw_pipelined", bytes([0 | lim, 7, 8]) + req + release + term + creds
          + logout)
    write("ipc_reader", "raw_small_limit", bytes([0 | (0 << 2), 9, 9]) + req + release)
    write("ipc_reader", "raw_bad_magic", bytes([0 | lim, 1, 1]) + b"XBR2" + req[4:])
    write("ipc_reader", "raw_bad_type", bytes([0 | lim, 1, 1]) + frame(99, 0, b"x"))
    write("ipc_reader", "raw_huge_length", bytes([0 | (1 << 2), 2, 2])
          + struct.pack("=IIII", MAGIC, 1, 0, 0xFFFFFFF0))
    write("ipc_reader", "raw_response", bytes([0 | lim, 4, 4]) + resp)
    rt = b"".join(bytes([t, a, n]) + bytes(range(n * 7 % 256)) * 1 for t, a, n in
                  ((0, 1, 3), (4, 0, 0), (1, 200, 20), (6, 7, 1)))
    write("ipc_reader", "roundtrip_frames", bytes([1 | (1 << 2), 3, 5]) + rt)
    write("ipc_reader", "roundtrip_small", bytes([1, 9, 1]) + rt)
    write("ipc_reader", "strings_5", bytes([2 | (5 << 4), 0, 0])
          + b"example.org\0alice\0alice@example.org\0alice\0\0")
    write("ipc_reader", "strings_3_missing", bytes([3 | (3 << 4), 0, 0]) + b"a\0b")
    write("ipc_reader", "strings_trailing", bytes([2 | (2 << 4), 0, 0]) + b"a\0b\0c")


# --------------------------------------------------------------------------- JWT
KEY = b"fuzz-key-0123456789abcdef0123456789abcdef"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token(header, claims, key=KEY):
    h = b64u(header.encode() if isinstance(header, str) else header)
    c = b64u(claims.encode() if isinstance(claims, str) else claims)
    sig = b64u(hmac.new(key, h + b"." + c, hashlib.sha256).digest())
    return h + b"." + c + b"." + sig


def jwt():
    secret = b"0123456789abcdef0123456789abcdef"
    jwk = json.dumps({"kty": "oct", "k": b64u(secret).decode(), "alg": "HS256"})
    write("jwt", "key_jwk", b"\0" + jwk.encode())
    write("jwt", "key_jwk_padded", b"\0" + ('{"kty":"oct","k":"%s"}' % base64.urlsafe_b64encode(
        secret).decode()).encode())
    write("jwt", "key_jwks", b"\0" + json.dumps({"keys": [{"kty": "oct", "k": b64u(secret)
                                                            .decode()}]}).encode())
    write("jwt", "key_raw_newline", b"\0" + b"q8Hk2bX9Vn4tR7wZ1pL6sD3fG5jK0mN8cV2xB4nM6qW9e=\n")
    write("jwt", "key_jwk_escapes", b"\0" + b' {"kty":"o\\u0063t","k":"%s","x":[1,-2.5e3,true,'
          b'null,{"a":"\\ud83d\\ude00"}]}' % b64u(secret))
    write("jwt", "key_bad_kty", b"\0" + b'{"kty":"RSA","n":"abc","e":"AQAB"}')
    claims = '{"jid":"juliet@example.org","iat":1699999990,"exp":1700000050}'
    write("jwt", "verify_good", b"\1" + token('{"alg":"HS256","typ":"JWT"}', claims))
    write("jwt", "verify_expired", b"\1" + token('{"alg":"HS256"}',
                                                 '{"jid":"a@b","exp":1600000000}'))
    write("jwt", "verify_alg_none", b"\1" + b64u(b'{"alg":"none"}') + b"." + b64u(claims.encode())
          + b".")
    write("jwt", "verify_bad_sig", b"\1" + token('{"alg":"HS256"}', claims, key=b"x" * 32))
    write("jwt", "signed_std_header", b"\2" + claims.encode())
    write("jwt", "signed_header_claims", b"\2" + b'{"alg":"HS256","typ":"jwt"}\0'
          b'{"jid":"d\\\\27artagnan@example.org","exp":1700000100,"nbf":1699999000}')
    write("jwt", "signed_crit", b"\2" + b'{"alg":"HS256","crit":["exp"]}\0' + claims.encode())
    write("jwt", "signed_dup", b"\2" + b'{"jid":"a@b","jid":"c@d","exp":1700000100}')
    write("jwt", "signed_unicode", b"\2" + '{"jid":"\u00e9l\u00e8ve@example.org","exp":'
          '1700000100,"n":[[[[[]]]]],"f":1.5e-3}'.encode())
    write("jwt", "signed_bignum", b"\2" + b'{"jid":"a@b","exp":99999999999999999999}')
    write("jwt", "mint_jid", b"\3" + b"juliet@example.org")
    write("jwt", "mint_escaped", b"\3" + b'd\\27art"agnan\x01@example.org')


# --------------------------------------------------------------------------- JID
def jid():
    seeds = {
        "full": (1, "juliet@example.org/balcony", "d'artagnan", "%{REMOTE_USER}@example.org",
                 "d'artagnan", "Example.ORG"),
        "ipv6": (0, "romeo@[2001:db8::1]", "c:\\net", "%{REMOTE_USER}@%{SERVER_NAME}",
                 "John Doe", "chat.Example.org"),
        "escapes": (1, "space\\20cadet@example.com", "\\5c\\20 x", "x\\20%{REMOTE_USER}@h",
                    "a@b", "h"),
        "idn": (1, "\u00e9l\u00e8ve@b\u00fccher.example/r\u00e9s", "\u00e9 \u00e8", "%%%{AUTHENTICATE_uid}@x",
                "", ""),
        "bad": (0, "@example.org/", " lead", "%{}@", "\x7f", "-bad-"),
        "long_label": (0, "a@" + "b" * 64 + ".org", "\\", "%{REMOTE_USER}@a.b", "\\40", "x"),
    }
    for name, (flags, j, raw, tmpl, user, server) in seeds.items():
        write("jid", name, bytes([flags]) + "\0".join([j, raw, tmpl, user, server]).encode())


# --------------------------------------------------------------------------- SASL
def scram(hashname, user, password, cnonce, snonce_ext, salt, iters):
    """(server_first, server_final) for a client that sent n,,n=user,r=cnonce."""
    h = getattr(hashlib, hashname)
    nonce = cnonce + snonce_ext
    server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), iters)
    client_first_bare = "n=%s,r=%s" % (user, cnonce)
    without_proof = "c=biws,r=%s" % nonce
    auth = ",".join([client_first_bare, server_first, without_proof]).encode()
    salted = hashlib.pbkdf2_hmac(hashname, password.encode(), salt, iters)
    server_key = hmac.new(salted, b"Server Key", h).digest()
    server_sig = hmac.new(server_key, auth, h).digest()
    return server_first, "v=" + base64.b64encode(server_sig).decode()


def sasl():
    # RFC 5802 §5 and RFC 7677 §3 examples (the harness uses their client nonces).
    s1_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    s1_final = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
    s256_first = ("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                  "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    s256_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    write("sasl", "rfc5802_success", b"\0" + ("c%s\0s%s" % (s1_first, s1_final)).encode())
    write("sasl", "rfc5802_challenge_final", b"\0" + ("c%s\0c%s\0s" % (s1_first, s1_final))
          .encode())
    write("sasl", "rfc7677_success", b"\1" + ("c%s\0s%s" % (s256_first, s256_final)).encode())
    write("sasl", "rfc7677_ext", b"\1" + ("c%s,x=ext\0s%s,y=1" % (s256_first, s256_final))
          .encode())
    write("sasl", "server_error", b"\0" + ("c%s\0se=invalid-proof" % s1_first).encode())
    write("sasl", "mandatory_ext", b"\0" + b"cm=foo,r=fyko+d2lbbFgONRv9qkxdawLx,s=QQ==,i=4096")
    write("sasl", "success_without_proof", b"\1" + b"sv=AAAA")
    write("sasl", "bad_nonce", b"\0" + b"cr=other,s=QSXCR+Q6sek8bf92,i=4096")
    write("sasl", "low_iterations", b"\0" + b"cr=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=1")
    write("sasl", "plain_success", b"\2" + b"s")
    write("sasl", "plain_challenge", b"\2" + b"cabc")
    write("sasl", "base64_pad", b"\0" + b"cQQ==\0cQUI=\0cA===")


# --------------------------------------------------------------------------- login
def login():
    zero_nonce = base64.b64encode(bytes(18)).decode()   # the harness's RAND gives zeros
    first, final = scram("sha1", "user", "pencil", zero_nonce, "c2VydmVyLW5vbmNl", b"salt-1234",
                         4096)
    first256, final256 = scram("sha256", "user", "pencil", zero_nonce, "s256", b"salt-5678", 4096)

    def el(tag, text=None):
        if text is None:
            return "<%s xmlns='%s'/>" % (tag, SASL)
        return "<%s xmlns='%s'>%s</%s>" % (tag, SASL, base64.b64encode(text.encode()).decode(),
                                           tag)

    bind_result = ("<iq type='result' id='xb-bind'><bind xmlns='%s'><jid>user@example.org/"
                   "xb-0123456789ab</jid></bind></iq>" % BIND)
    session_result = "<iq type='result' id='xb-session'/>"
    runs = {
        # password mode, SCRAM-SHA-1 with the server signature in <success/>
        "scram_sha1_success": (0, [FEAT_SASL_PROSODY, el("challenge", first), el("success", final),
                                   FEAT_BIND_PROSODY, bind_result]),
        # SCRAM-SHA-256, server-final as a challenge, old server wanting a session
        "scram_sha256_challenge_final": (0, [FEAT_SASL_EJABBERD, el("challenge", first256),
                                             el("challenge", final256), el("success"),
                                             FEAT_BIND_OLD, bind_result, session_result]),
        "token_plain": (1, [FEAT_SASL_EJABBERD, el("success"), FEAT_BIND_PROSODY,
                            bind_result.replace("user@", "USER@")]),
        "plain_failure": (1, [FEAT_SASL_PROSODY, "<failure xmlns='%s'><not-authorized/><text>"
                              "bad</text></failure>" % SASL]),
        "scram_only_no_scram": (2, ["<stream:features><mechanisms xmlns='%s'><mechanism>PLAIN"
                                    "</mechanism></mechanisms></stream:features>" % SASL]),
        "bind_conflict": (1, [FEAT_SASL_PROSODY, el("success"), FEAT_BIND_PROSODY,
                              "<iq type='error' id='xb-bind'><error type='cancel'><conflict "
                              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"]),
        "bind_other_account": (1, [FEAT_SASL_PROSODY, el("success"), FEAT_BIND_PROSODY,
                                   bind_result.replace("user@", "admin@")]),
        "stream_error": (0, [STREAM_ERROR.replace("</stream:stream>", "")]),
        "success_before_proof": (0, [FEAT_SASL_PROSODY, el("success", final)]),
        "not_base64": (0, [FEAT_SASL_PROSODY, "<challenge xmlns='%s'>!!!</challenge>" % SASL]),
        "after_done": (1, [FEAT_SASL_PROSODY, el("success"), FEAT_BIND_PROSODY, bind_result,
                           "<presence/>"]),
    }
    for name, (flags, elements) in runs.items():
        write("xmpp_login", name, bytes([flags]) + "\0".join(elements).encode())


# --------------------------------------------------------------------------- xml_element
def xml_element():
    seeds = {
        "features": FEAT_BIND_PROSODY,
        "features_sasl": FEAT_SASL_EJABBERD,
        "message": STANZAS[1],
        "cdata": STANZAS[5],
        "stream_error": STREAM_ERROR.replace("</stream:stream>", ""),
        "attrs_ns": "<x:a xmlns:x='urn:x' xmlns:y='urn:y' y:b='1' xml:lang='en' c='&#9;&#10;'>"
                    "t<y:c>u</y:c>v<d xmlns=''/></x:a>",
        "whitespace": "\n  <presence/>\n ",
        "two_elements": "<a/><b/>",
        "closing_wrapper": "<a/></xb-wrap><xb-wrap>",
        "doctype": "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
        "deep": "<a>" * 40 + "</a>" * 40,
    }
    for name, s in seeds.items():
        write("xml_element", name + "_default", b"\0" + s.encode())
        write("xml_element", name + "_small", b"\x17" + s.encode())


# --------------------------------------------------------------------------- config
def config():
    def ser(pairs):
        return b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in pairs)
    base = [("max_wait", "60"), ("max_hold", "1"), ("inactivity", "60"), ("polling", "2"),
            ("max_sessions", "1024"), ("response_cache", "5"), ("max_body_size", "65536"),
            ("max_stanza_size", "262144"), ("max_queued_bytes", "1048576"),
            ("connect_timeout", "10000000"), ("token_lifetime", "60"), ("attach_grace", "120"),
            ("max_per_user", "5"), ("ca_file", "/etc/ssl/certs/ca-certificates.crt"),
            ("socket_path", "/run/apache2/xmpp-bridge.sock"), ("token_key_file", "")]
    write("config", "default", ser(base + [("domain", "example.org xmpp.internal 5222 0 -")]))
    write("config", "two_domains", ser(base + [
        ("domain", "example.org 127.0.0.1 5222 0 xmpp.example.org"),
        ("domain", "plain.test localhost 15222 1 -")]))
    write("config", "bad_tls", ser([("domain", "a b 1 7 -")]))
    write("config", "overflow", ser([("max_wait", "99999999999999999999"),
                                     ("max_body_size", "-1")]))


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    bosh_body()
    framer()
    xmpp_conn()
    ipc_reader()
    jwt()
    jid()
    sasl()
    login()
    xml_element()
    config()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    count = sum(len(fs) for _, _, fs in os.walk(CORPUS))
    print("%d seed files, %d bytes under %s" % (count, total, CORPUS))


if __name__ == "__main__":
    main()
