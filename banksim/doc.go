// Package banksim simulates the banks zhifu moves money through, as a real
// HTTP server that fails the way the articles' banks failed: it slows down,
// refuses traffic beyond its capacity or queues it until it collapses, takes
// the money and then never answers, loses callbacks or sends them twice or
// late or out of order, goes down entirely, and stops for maintenance (as CEB
// stopped for an hour on 11 November 2010 to expand). The platform's bank
// channels are tested against it over real HTTP, using Client.
//
// # Books
//
// Each bank keeps its own books in the simulator's SQLite file: card accounts
// (a token, the holder, the last four digits and a balance in fen), the
// platform's settlement account at the bank, and a journal of every debit
// and credit. A debit moves money from a card to the settlement account; a
// credit (a payout) moves it back to a card. The bank never creates or loses
// money: card balances plus the settlement balance always equal the bank's
// funding (the settlement float plus the starting balance of every card it
// provisioned), which Books and Sim.CheckBooks verify. Card numbers are never
// stored: only a token (an HMAC of the number under a key of the bank's) and
// the last four digits, as PCI DSS asks.
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
//
// # Endpoints
//
// All bodies are JSON; amounts are integer fen. {bank} is one of the
// configured banks (zhifu.Banks by default).
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
// The first verify of a number provisions its account with the starting
// balance; the same number always gets the same token. A holder different
// from the first one is HOLDER_MISMATCH.
//
// request_id is 1 to 64 characters of [A-Za-z0-9._:-], unique per bank across
// debits and credits. The same request_id with the same content (kind, card,
// amount, callback_url) answers the current state of the first request and
// never moves money twice; with different content it is 409
// REQUEST_ID_CONFLICT. A Transaction is
//
//	{"request_id","bank","kind":"debit"|"credit","status","amount","bank_txn_id",
//	 "reason","created_at","settled_at"}
//
// status is ACCEPTED (received, outcome not yet known; only when the scenario
// has a settle delay), SUCCESS or FAILED. A FAILED transaction names a reason:
// INSUFFICIENT_FUNDS (the card), SETTLEMENT_INSUFFICIENT (a payout beyond the
// platform's settlement balance), CARD_NOT_FOUND, BANK_ERROR (injected) or
// AMOUNT_OVERFLOW.
//
// # Callbacks
//
// When a transaction with a callback_url reaches SUCCESS or FAILED, the bank
// POSTs the Transaction as JSON to callback_url, signed in Bank-Signature. An
// answer other than 2xx is retried with doubling gaps, a bounded number of
// times. Depending on the scenario a callback is lost, sent twice, sent late,
// or overtaken by a later transaction's. Callbacks not yet delivered when the
// simulator closes are dropped, as a bank that restarts may drop them: the
// platform must be able to learn every outcome by inquiry or statement.
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
// in settled_at.
//
// # Online banking
//
// GET /banks/{bank}/ebank?request_id=…&amount=…&return_url=…&callback_url=…&expires=…&sig=…
// renders a small HTML page on which a person enters a card number and the
// holder's name and confirms; the form POSTs back to the same path, debits the
// card exactly as POST /debits would (same journal, same callback) and
// redirects (303) to return_url with request_id and status added to its
// query. sig is hex HMAC-SHA256(secret, canonical), where canonical is the
// other parameters form-encoded and sorted by name (url.Values.Encode), so
// nobody can change the amount; expires (unix seconds) is optional and
// refused once past. Client.EbankURL builds such a link.
//
// # Errors
//
// Errors answer {"error":"CODE","message":"…"} with: 400 INVALID_REQUEST,
// INVALID_CARD, HOLDER_MISMATCH; 401 INVALID_SIGNATURE; 404 NOT_FOUND; 409
// REQUEST_ID_CONFLICT; 413 REQUEST_TOO_LARGE; 500 SYSTEM_ERROR; 503
// SYSTEM_BUSY (over capacity), BANK_UNAVAILABLE (outage) and MAINTENANCE
// (with "until", RFC 3339, and a Retry-After header).
//
// # Scenarios and control
//
// Each bank behaves as its Scenario says: capacity, latency, failure and
// error rates, timeouts after debiting, callback faults, outages and
// maintenance windows. Scenarios come from Config, from a JSON file
// (LoadScenario) and live from the control API, which needs
// "Authorization: Bearer <Config.ControlToken>":
//
//	GET/PUT /control/banks/{bank}   one bank's Scenario (PUT replaces it)
//	GET/PUT /control/banks          Scenarios for all banks (PUT replaces them all)
//	GET     /control/stats          Stats of every bank
//	GET     /control/books          Books of every bank, with "ok"
//
// ControlClient calls these from another process.
//
// Randomness comes from Config.Rand (or Config.Seed), so a failing run
// replays. Timestamps, maintenance windows, statements and the capacity
// buckets follow Config.Clock; latencies and callback delays are real
// durations, because they stand for time on the wire that the platform's
// HTTP client must really wait out.
package banksim
