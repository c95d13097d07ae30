// Package identity knows who is calling: users (login with a slowly hashed
// password, bearer-token sessions) and merchants (a secret shown once, every
// request signed with HMAC-SHA256 inside a timestamp window, each nonce used
// once).
package identity
