// Package wallet keeps users' money: the platform's chart of accounts, wallet
// balances (available and frozen), operator-confirmed deposits, user-to-user
// transfers and statements. Every movement is a ledger transfer.
package wallet
