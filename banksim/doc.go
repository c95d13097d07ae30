// Package banksim simulates the banks zhifu moves money through: a real
// HTTP server that answers the protocol of package bankapi (its endpoints,
// signatures, callbacks, statements and online-banking pages are documented
// there) and fails the way the articles' banks failed: it slows down,
// refuses traffic beyond its capacity or queues it until it collapses, takes
// the money and then never answers, loses callbacks or sends them twice or
// late or out of order, goes down entirely, and stops for maintenance (as CEB
// stopped for an hour on 11 November 2010 to expand). The platform's bank
// channels are tested against it over real HTTP, through bankapi.Client.
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
// Any card number that passes the protocol's checks is a card: its first
// verify provisions its account with Config.StartingBalance, and the holder
// given then is the holder for good. Debits and credits answer ACCEPTED only
// when the scenario has a settle delay; otherwise they are decided at once.
// Callbacks not yet delivered when the simulator closes are dropped, as a
// bank that restarts may drop them.
//
// # Scenarios
//
// Each bank behaves as its Scenario says: capacity (a token bucket and a
// bound on requests in flight, refusing or queueing beyond it), latency,
// failure and error rates, timeouts after debiting, settle delays, callback
// faults, an outage ("503" or "close"), and maintenance windows. A scenario
// file (LoadScenario, "zhifu banksim --scenario") is JSON Scenarios: a
// default for every bank and overrides by name, for instance
//
//	{"default": {"latency": {"median_ms": 40, "p99_ms": 400}},
//	 "banks": {"CMB": {"rps": 200, "overload": "queue"},
//	           "CEB": {"maintenance": [{"start": "2010-11-11T00:00:00+08:00",
//	                                    "end":   "2010-11-11T01:00:00+08:00"}]}}}
//
// Unknown fields are refused, so a misspelt setting is never silently
// ignored.
//
// # Control API
//
// The control API, which needs "Authorization: Bearer <Config.ControlToken>"
// (and does not exist without one), changes scenarios live:
//
//	GET    /control/banks/{bank}   the bank's behaviour now (Behaviour): its scenario in full,
//	                               with the defaults it implies, and a one-line summary
//	PUT    /control/banks/{bank}   replace the bank's scenario with the body; answers as GET
//	PATCH  /control/banks/{bank}   change only the fields the body names ({"outage":""} ends
//	                               an outage and keeps the rest); answers as GET
//	DELETE /control/banks/{bank}   back to the scenario the simulator started with; answers as GET
//	GET    /control/banks          Scenarios for all banks
//	PUT    /control/banks          replace them all (banks not named get the default)
//	GET    /control/stats          Stats of every bank
//	GET    /control/books          Books of every bank, with "ok"
//	POST   /control/banks/{bank}/differences
//	                               change the bank's books so that its statement differs from
//	                               what the platform recorded (Difference): a request's money
//	                               moved twice, an outcome reversed, another amount, a settlement
//	                               moved to another day, a debit nobody asked for; for
//	                               reconciliation tests. The books still balance afterwards.
//
// A changed scenario takes effect at once; its capacity buckets start full.
// ControlClient calls these from another process.
//
// Randomness comes from Config.Rand (or Config.Seed), so a failing run
// replays. Timestamps, maintenance windows, statements and the capacity
// buckets follow Config.Clock; latencies and callback delays are real
// durations, because they stand for time on the wire that the platform's
// HTTP client must really wait out.
package banksim
