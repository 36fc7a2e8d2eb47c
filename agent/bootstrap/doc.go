// Package bootstrap gets the MQTT broker address and credentials from the
// cloud account service, as the script edge-agent replaces did (the
// bootstrap section of the config file; docs/design.md#bootstrap):
//
//  1. login: POST login_url (its query carries appId, tenantId and
//     appSecret, sent as is) with Content-Type application/json and the body
//     {"channel":"1","deviceId":"","password":MD5HEX,"username":USER},
//     where MD5HEX is the lowercase hex MD5 of the password; the answer
//     carries an access token.
//  2. loadBalance: GET load_balance_url with the header "accessToken: TOKEN";
//     the answer carries the broker address and an MQTT user name and
//     password.
//
// What it promises:
//
//   - TLS is verified against ca_file or the system roots, TLS 1.2 at least;
//     plain http, and a plaintext broker in the answer, only when allowed.
//     Redirects are reported, not followed (they would resend the password
//     or token).
//   - Each request is bounded by a timeout and tried up to 4 times, with
//     jittered exponential backoff, when it fails in a way that may pass: a
//     network error, a timeout, HTTP 408, 429 or 5xx. Nothing else is tried
//     again: 401/403 mean the credentials are wrong, and a malformed answer
//     will not mend itself within seconds.
//   - Every error is an *Error that names the step (login, loadBalance), the
//     HTTP status if any, and the URL without its query, and says whether
//     the service was unreachable, refused the credentials, or failed TLS.
//   - No error carries the password, its MD5, the token, the MQTT password
//     or any value from a URL's query (the app secret). The package does
//     not log.
//
// # Accepted answers
//
// Both answers are JSON objects. Unless a field's path is configured
// (bootstrap.token_field, broker_field, mqtt_username_field,
// mqtt_password_field: dotted paths like "data.token", matched exactly, a
// number indexing an array), each field is looked for under these names,
// ignoring case, first at the top level and then inside "data":
//
//	login        token          Token, accessToken
//	loadBalance  broker         broker, brokerUrl, brokerAddress, mqttUrl, mqttBroker, url, address, server
//	             MQTT username  username, mqttUsername, mqttUser, user
//	             MQTT password  password, mqttPassword, passwd, pwd
//
// so {"Token":"…"}, {"data":{"token":"…"}}, {"broker":"ssl://h:1883",
// "username":"u","password":"p"} and {"code":0,"data":{"brokerUrl":…}}
// all work. Values are strings (a number is taken as its digits). The
// broker is parsed by config.ParseBroker: ssl://, tls://, mqtts:// (TLS),
// host:port and a bare host (TLS, port 8883), tcp:// and mqtt:// (plaintext,
// refused unless allowed). TLS is never inferred from the port: the service
// answers ssl://host:1883.
//
// An answer without the field that says it failed (HTTP 200 with
// "success": false, or a "code", "errcode", "resultCode" or "status" other
// than 0, 200, "ok" or "success") is a refusal, quoted with its "msg" or
// "message"; a failure code from 500 to 599 counts as unreachable.
//
// # Expiry
//
// Either answer may say when the credentials expire; Credentials.Expires is
// the earliest time found, zero when none is. Looked for, ignoring case, at
// the top level and inside "data" (or at the one configured path):
// expiresIn, expires_in, expireIn, expire_in, ttl, expiresAt, expires_at,
// expireAt, expire_at, expireTime, expire_time, expiration, expiry, exp.
// A value is read by its form, not its name: a number (or a string of one)
// below 1e9 is seconds after the request; below 1e11 Unix seconds; above
// that Unix milliseconds; a string may also be an RFC 3339 time. Zero or
// negative means no expiry. Without a configured path, a token or MQTT
// password that is a JWT also contributes its "exp" claim (read, not
// verified).
//
// Credentials encode with MarshalBinary for a cache; the bytes hold the
// secrets. They carry the AccountID of the login URL, loadBalance URL and
// user name that fetched them, and Client.CheckCached refuses cached ones
// from another account, or naming a plaintext broker that is not allowed.
package bootstrap
