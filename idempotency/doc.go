// Package idempotency keeps the API's Idempotency-Key promise: the first
// response to a POST with a key is replayed for the same key and the same
// request for a day; the same key with another request is refused
// (IDEMPOTENCY_KEY_REUSED); and while the first runs, a second is told so
// (IDEMPOTENCY_KEY_IN_USE).
//
// The durable record of a key commits in the same batch transaction as the
// request's own change: a ledger.Guard in the request's context, claimed by
// the first op the request commits, writes the key's row beside the op's
// rows. After any crash, then, either the change and its key are both there
// or neither is. If neither is, a retry simply runs. If both are but the
// response was not yet stored, the retry runs again in recovery (Recovering
// reports it), and the services answer it from what the first run left
// behind: their changes carry ids derived from the request (a transfer id
// from the key, a trade's out_trade_no), and a move already made by this
// very request is answered with the object as it now stands.
//
// "In use" therefore exists only in the memory of the process running the
// request; a key is never left claimed by a process that died. The response
// itself is stored afterwards by a rider on a later batch (ledger.Batcher's
// Ride), which costs the request no commit of its own: a keyed request
// costs one durable commit, the one its change needs anyway.
//
// Keys are scoped to the caller ("merchant:<id>", "user:<id>", "admin"), so
// two callers may use the same key. A response of 5xx or 429 is not kept:
// its outcome is unknown, and a retry runs (or recovers) instead.
package idempotency
