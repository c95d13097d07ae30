// Package bankapi is the wire protocol zhifu speaks with its banks: the
// messages, the signatures that authenticate both directions, the client
// that calls a bank, the callbacks a bank sends back, and the daily
// statement's format. Package channel speaks to banks through it; package
// banksim is a simulator of banks that answer it.
//
// # Signatures
//
// Every request from the platform carries the header
//
//	Bank-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>
//
// where secret is the bank's secret, and payload is the request body for a
// POST and the request target (path and query, exactly as sent) for a GET.
// The bank answers 401 INVALID_SIGNATURE when the header is missing or wrong
// or t is more than five minutes from the bank's clock. The bank signs its
// callbacks the same way, over the callback body, with the same secret.
// Several v1 values (at most four) may be given while a secret is rotated.
//
// # Endpoints
//
// All bodies are JSON; amounts are integer fen. {bank} is the bank's name
// (ICBC, CMB…).
//
//	POST /banks/{bank}/cards/verify        {card_no, holder} → {bank, card_token, last4}
//	POST /banks/{bank}/debits              {request_id, card_token, amount, callback_url} → Transaction
//	POST /banks/{bank}/credits             same body and answer: a payout to the card
//	GET  /banks/{bank}/transactions/{id}   → Transaction, or 404 NOT_FOUND if the bank never received it
//	GET  /banks/{bank}/statements?date=YYYY-MM-DD → CSV (see below)
//	GET  /banks/{bank}/maintenance         → {"windows":[{"start","end"}]} current and future windows,
//	                                         answered even during an outage or maintenance
//	GET  /banks/{bank}/ebank?…&sig=…       online-banking page (see below); POST confirms it
//
// card_no is 16 to 19 digits passing the Luhn check; holder is not empty.
// The same number always gets the same token. A holder different from the
// one the bank knows is HOLDER_MISMATCH.
//
// request_id is 1 to 64 characters of [A-Za-z0-9._:-], unique per bank across
// debits and credits; the platform's own begin with two capital letters, so
// "probe" is never one of them, and Client.Probe inquires about it to learn
// whether the bank answers at all (a 404 says it does). The same request_id with the same content (kind, card,
// amount, callback_url) answers the current state of the first request and
// never moves money twice; with different content it is 409
// REQUEST_ID_CONFLICT. A Transaction is
//
//	{"request_id","bank","kind":"debit"|"credit","status","amount","bank_txn_id",
//	 "reason","created_at","settled_at"}
//
// status is ACCEPTED (received, outcome not yet known), SUCCESS or FAILED. A
// FAILED transaction names a reason: INSUFFICIENT_FUNDS (the card),
// SETTLEMENT_INSUFFICIENT (a payout beyond the platform's settlement
// balance), CARD_NOT_FOUND, BANK_ERROR (the bank's own failure) or
// AMOUNT_OVERFLOW.
//
// # Callbacks
//
// When a transaction with a callback_url reaches SUCCESS or FAILED, the bank
// POSTs the Transaction as JSON to callback_url, signed in Bank-Signature. An
// answer other than 2xx is retried with doubling gaps, a bounded number of
// times. A callback may be lost, sent twice, sent late, or overtaken by a
// later transaction's: the platform learns every outcome by inquiry or
// statement too, and applies it once whichever comes first.
//
// # Statements
//
// GET /banks/{bank}/statements?date=2010-11-11 answers text/csv with a
// header line and these columns:
//
//	request_id,bank_txn_id,kind,amount,status,settled_at
//
// one line per transaction settled (SUCCESS or FAILED) that day in Beijing
// time (UTC+8), ordered by settled_at; amount in fen; settled_at in RFC 3339
// with +08:00. Only SUCCESS lines moved money. The first line after the header
// is OPENING_BALANCE and the last CLOSING_BALANCE: the settlement account's
// balance at the start and end of the day, in the amount column, the instant
// in settled_at. StatementWriter writes one and ParseStatement reads one.
//
// # Online banking
//
// GET /banks/{bank}/ebank?request_id=…&amount=…&return_url=…&callback_url=…&expires=…&sig=…
// renders a page on which a person enters a card number and the holder's
// name and confirms; the form POSTs back to the same path, debits the card
// exactly as POST /debits would (same transaction, same callback) and
// redirects (303) to return_url with request_id and status added to its
// query. sig is hex HMAC-SHA256(secret, canonical), where canonical is the
// other parameters form-encoded and sorted by name (url.Values.Encode), so
// nobody can change the amount; expires (unix seconds) is optional and
// refused once past. Client.EbankURL builds such a link.
//
// # Errors
//
// Errors answer ErrorBody, {"error":"CODE","message":"…"}, with: 400
// INVALID_REQUEST, INVALID_CARD, HOLDER_MISMATCH; 401 INVALID_SIGNATURE; 404
// NOT_FOUND; 409 REQUEST_ID_CONFLICT; 413 REQUEST_TOO_LARGE; 500
// SYSTEM_ERROR; 503 SYSTEM_BUSY (over capacity), BANK_UNAVAILABLE (outage)
// and MAINTENANCE (with "until", RFC 3339, and a Retry-After header). A 503
// with one of those three codes promises the bank did nothing with the
// request; any other failure, or no answer, leaves it unknown.
package bankapi

import ()
