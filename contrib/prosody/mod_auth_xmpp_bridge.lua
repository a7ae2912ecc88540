-- mod_auth_xmpp_bridge: Prosody 0.12 auth provider for mod_xmpp_bridge's prebind logins.
--
-- mod_xmpp_bridge logs a web site's already-authenticated users in to XMPP without their
-- password: it sends, as the SASL PLAIN password, a short-lived HS256 JWT
--   {"alg":"HS256","typ":"JWT"} . {"jid":"user@host","iat":N,"exp":N+lifetime}
-- signed with a secret it shares with this module (src/xb_jwt.c mints it). This provider
-- accepts such a token for the user named in its "jid" claim until its "exp", and hands every
-- other login to a fallback provider (internal_hashed by default), so users with a stored
-- password keep PLAIN and SCRAM-SHA-1/-256 as before.
--
--   authentication = "xmpp_bridge"
--   xmpp_bridge_token_key_file = "/etc/prosody/xmpp-bridge.jwk"  -- JWK {"kty":"oct","k":...}
--                                                                -- or the raw secret
--   xmpp_bridge_fallback_auth = "internal_hashed"                -- or "none": tokens only
--
-- The key file is the one mod_xmpp_bridge and ejabberd's jwt_key read: a JWK
-- {"kty":"oct","k":"<base64url>"} (or a JWK Set holding exactly that one key), or else raw
-- secret bytes with one trailing newline stripped; at least 32 bytes of secret. It must not be
-- accessible by others nor writable by its group (root:prosody 0640 or prosody 0600).
--
-- Tokens are credentials: they are never logged, and neither is the key.

local jwt = require "util.jwt";
local json = require "util.json";
local base64_decode = require "util.encodings".base64.decode;
local jid_prep = require "util.jid".prep;
local new_sasl = require "util.sasl".new;
local scram_hashers = require "util.sasl.scram".hashers;
local generate_uuid = require "util.uuid".generate;
local lfs = require "lfs";

local host = module.host;
local key_path = module:get_option_path("xmpp_bridge_token_key_file", nil, "config");
local fallback_name = module:get_option_string("xmpp_bridge_fallback_auth", "internal_hashed");

local TOKEN_MAX = 8192;      -- as XB_JWT_TOKEN_MAX
local KEY_FILE_MAX = 65536;  -- as XB_JWT_KEY_FILE_MAX
local KEY_MIN_BYTES = 32;    -- as XB_JWT_KEY_MIN_BYTES

-- Key file ----------------------------------------------------------------------------------

local function b64url_decode(s)
	if type(s) ~= "string" or not s:find("^[A-Za-z0-9_-]*=?=?$") then return nil; end
	s = s:gsub("=+$", "");
	if #s % 4 == 1 then return nil; end
	s = s:gsub("[-_]", { ["-"] = "+", ["_"] = "/" });
	return base64_decode(s .. ("="):rep((4 - #s % 4) % 4));
end

local function secret_from_jwk(text)
	local jwk = json.decode(text);
	if type(jwk) ~= "table" then
		return nil, "is not a valid JWK (not a JSON object)";
	end
	if jwk.keys ~= nil then
		local keys = jwk.keys;
		if type(keys) ~= "table" or #keys ~= 1 or type(keys[1]) ~= "table" or keys[2] ~= nil then
			return nil, "is a JWK Set that does not hold exactly one key";
		end
		jwk = keys[1];
	end
	if jwk.kty ~= "oct" then
		return nil, "is a JWK whose \"kty\" is not \"oct\" (a shared HMAC secret)";
	end
	if jwk.alg ~= nil and jwk.alg ~= "HS256" then
		return nil, "is a JWK whose \"alg\" is not \"HS256\"";
	end
	local secret = b64url_decode(jwk.k);
	if not secret then
		return nil, "is a JWK without a valid base64url \"k\"";
	end
	return secret;
end

local function load_key(path)
	if not path then
		return nil, "xmpp_bridge_token_key_file is not set";
	end
	local attr, err = lfs.attributes(path);
	if not attr then
		return nil, ("cannot stat %s: %s"):format(path, tostring(err));
	end
	if attr.mode ~= "file" then
		return nil, ("%s is not a regular file"):format(path);
	end
	-- "rwxrwxrwx": group may read (root:prosody 0640 is how Debian hands prosody its secrets),
	-- but not write; others may do nothing.
	local perms = attr.permissions or "";
	if #perms ~= 9 or perms:sub(5, 5) ~= "-" or perms:sub(7, 9) ~= "---" then
		return nil, ("refusing %s: its permissions %s let others in or let the group write; "
			.. "chmod 600 or 640"):format(path, perms);
	end
	local f, open_err = io.open(path, "rb");
	if not f then
		return nil, ("cannot open %s: %s"):format(path, tostring(open_err));
	end
	local data = f:read(KEY_FILE_MAX + 1);
	f:close();
	data = data or "";
	if #data > KEY_FILE_MAX then
		return nil, ("%s is larger than %d bytes"):format(path, KEY_FILE_MAX);
	end
	local secret, why;
	if data:find("^[ \t\r\n]*{") then
		secret, why = secret_from_jwk(data);
		if not secret then
			return nil, path .. " " .. why;
		end
	else
		-- Raw bytes; one trailing newline ("\n" or "\r\n") is not part of the secret.
		secret = data:gsub("\r?\n$", "", 1);
	end
	if #secret < KEY_MIN_BYTES then
		return nil, ("%s holds a %d-byte secret; at least %d bytes are required")
			:format(path, #secret, KEY_MIN_BYTES);
	end
	return secret;
end

local secret, key_err = load_key(key_path);
if not secret then
	-- Without a key no token can verify; ordinary logins still go to the fallback.
	module:log("error", "No token key, prebind logins will fail: %s", key_err);
end

-- Tokens ------------------------------------------------------------------------------------

-- True when `token` is a valid token for username@host; otherwise false and a reason that
-- never quotes the token.
local function check_token(username, token)
	if not secret then
		return false, "no key";
	end
	if type(token) ~= "string" or #token > TOKEN_MAX
	or not token:find("^[A-Za-z0-9_-]+%.[A-Za-z0-9_-]+%.[A-Za-z0-9_-]+$") then
		return false, "not a token";
	end
	-- util.jwt checks alg == "HS256" and compares the signature in constant time
	-- (util.hashes.equals); it can throw on some malformed input, hence pcall.
	local ok, valid, claims = pcall(jwt.verify, secret, token);
	if not ok then
		return false, "malformed token";
	end
	if not valid then
		return false, type(claims) == "string" and claims or "invalid token";
	end
	if type(claims) ~= "table" then
		return false, "claims are not an object";
	end
	local now = os.time();
	local exp = claims.exp;
	if type(exp) ~= "number" or exp % 1 ~= 0 then
		return false, "no integer exp claim";
	end
	if now >= exp then
		return false, "expired";
	end
	local nbf = claims.nbf;
	if nbf ~= nil and (type(nbf) ~= "number" or now < nbf) then
		return false, "not valid yet (nbf)";
	end
	if type(claims.jid) ~= "string" then
		return false, "no jid claim";
	end
	-- Prepped as the server preps the login name (nodeprep lower-cases), so a token for
	-- Alice@example.org serves the account alice@example.org.
	local claimed = jid_prep(claims.jid);
	if not claimed or claimed ~= username .. "@" .. host then
		return false, "jid mismatch";
	end
	return true;
end

local function token_login(username, token)
	local ok, why = check_token(username, token);
	if ok then
		module:log("info", "Token login for %s@%s", username, host);
	elseif why == "jid mismatch" then
		-- A correctly signed token presented for another user.
		module:log("warn", "Token for another JID offered as %s@%s: refused", username, host);
	elseif why ~= "not a token" then
		module:log("debug", "Token for %s@%s refused: %s", username, host, why);
	end
	return ok;
end

-- Fallback provider -------------------------------------------------------------------------

local fallback;

if fallback_name ~= "none" then
	if fallback_name == "xmpp_bridge" then
		error("xmpp_bridge_fallback_auth must name another provider");
	end
	module:depends("auth_" .. fallback_name);
	-- Loading it as a dependency makes it an auth provider of this host without making it the
	-- host's provider (usermanager picks the one named by `authentication`); find it by name.
	module:handle_items("auth-provider", function (event)
		if event.item.name == fallback_name then
			fallback = event.item;
		end
	end, function (event)
		if event.item == fallback then
			fallback = nil;
		end
	end);
	if not fallback then
		module:log("error", "Fallback auth provider %q did not load", fallback_name);
	end
end

local function unsupported()
	return nil, "Not supported by this authentication provider";
end

local provider = {};

function provider.test_password(username, password)
	if token_login(username, password) then
		return true;
	end
	if fallback then
		return fallback.test_password(username, password);
	end
	return nil, "Auth failed. Invalid token.";
end

function provider.user_exists(username)
	if fallback then
		return fallback.user_exists(username);
	end
	return nil, "No such user";
end

function provider.users()
	if fallback then
		return fallback.users();
	end
	return function() end;
end

-- internal_plain's SASL backend reads the password back through usermanager, i.e. through us.
function provider.get_password(username)
	if fallback and fallback.get_password then
		return fallback.get_password(username);
	end
	return unsupported();
end

function provider.set_password(username, password)
	if fallback and fallback.set_password then
		return fallback.set_password(username, password);
	end
	return unsupported();
end

function provider.create_user(username, password)
	if fallback and fallback.create_user then
		return fallback.create_user(username, password);
	end
	return unsupported();
end

function provider.delete_user(username)
	if fallback and fallback.delete_user then
		return fallback.delete_user(username);
	end
	return unsupported();
end

-- SCRAM entries for a fallback that offers only a plaintext `plain` backend (internal_plain):
-- util.sasl's PLAIN prefers `plain` over `plain_test`, so `plain` cannot stay in the profile
-- once the token check is in `plain_test`; derive the SCRAM keys from it instead.
local function scram_from_plain(get_plain, hash_name)
	local hasher = scram_hashers[hash_name];
	return function (sasl, username, realm)
		local password, state = get_plain(sasl, username, realm);
		if not password then
			return nil, state;
		end
		local salt, iterations = generate_uuid(), 4096;
		local ok, stored_key, server_key = hasher(password, salt, iterations);
		if not ok then
			return nil, state;
		end
		return stored_key, server_key, iterations, salt, state;
	end
end

function provider.get_sasl_handler(session)
	local profile = {};
	if fallback then
		-- Keep the fallback's SCRAM backends (stored keys), EXTERNAL etc. as they are.
		local fb_profile = fallback.get_sasl_handler(session).profile;
		for name, backend in pairs(fb_profile) do
			if name ~= "mechanisms" and name ~= "plain" and name ~= "plain_test" then
				profile[name] = backend;
			end
		end
		if fb_profile.plain then
			profile.scram_sha_1 = profile.scram_sha_1 or scram_from_plain(fb_profile.plain, "SHA-1");
			profile.scram_sha_256 = profile.scram_sha_256
				or scram_from_plain(fb_profile.plain, "SHA-256");
		end
	end
	profile.plain_test = function (_, username, password, realm) -- luacheck: ignore 212/realm
		-- PLAIN has already saslprep'ed the password and nodeprep'ed the username.
		if token_login(username, password) then
			return true, true;
		end
		if fallback then
			return fallback.test_password(username, password) and true or false, true;
		end
		return false, true;
	end
	return new_sasl(host, profile);
end

module:provides("auth", provider);
