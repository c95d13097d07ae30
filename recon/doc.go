// Package recon is the platform's daily reconciliation with its banks, the
// suspense account's review items, and the custody check (备付金).
//
// # Runs
//
// A run reconciles one bank's statement of one day (Beijing time), read from
// the bank's statement endpoint (channel.Service.OpenStatement) or from a
// file the bank sent, with the platform's bank transactions. Both sides are
// streamed and sorted by request id in bounded chunks spilled to temporary
// files, then merged (sort.go), so memory does not grow with the day's size.
// Every line and every record of the day lands in a class (classify.go, pure
// rules): matched, bank only, ours only, amount mismatch, duplicate, late.
//
// What is safe is repaired by the run itself: a transaction the platform
// still had PROCESSING that the bank settled is decided through the
// channels' own op (the same transfer ids a callback would use, so the first
// to come wins); a top-up the platform failed that the bank took is credited
// to the wallet; a second debit of one top-up's card goes back to the card as
// a refund payout (a bank credit recorded before it is sent, with its own
// request id). Every other difference moves into or out of the suspense
// account and becomes a review item. Items and transfers have ids derived
// from the bank and the line or transaction, and the item commits with its
// transfers, so a run again (or a run cut short by a crash, and run again)
// repairs nothing twice and says it changed nothing. Transactions still
// PROCESSING long past their deadline become review items too.
//
// Two runs of one bank and day never overlap, on one node or many: a run
// holds a lease row (recon_leases) that it renews while it works; a lease
// left by a node that died expires, and one left by this node's previous
// process (the same node id: one server per data folder) is taken over at
// once. A scheduler runs each bank's previous day once a day after its
// statement is published; its next day moves on in the transaction that
// finishes the run, so a restart neither skips a day nor runs one twice.
//
// # Review items
//
// An operator resolves an item by proposing an action (credit the user,
// return to the card, write off against own funds); the proposal is an
// approval of kind "recon.resolve", carried out only when a second operator
// approves it, in the approval's own transaction (package approval).
//
// # Custody
//
// Custody compares, from the accounts' balances by code (not by replaying
// transfers), customer funds with the platform's money at the banks less its
// own funds: the two must be equal, and bank funds must cover customer
// funds. It is checked after every run, every minute in the background, and
// on demand; a break is logged at error with the accounts that explain it
// and shown in metrics.
package recon
