// Package campaign runs marketing campaigns that cannot run away.
//
// A campaign is made by an operator from a template (percent-off or
// fixed-off), scoped to payment kinds and merchants, and validated against
// the platform's hard limits before it can be saved. A second operator
// approves it; approval funds its budget, a ledger account that cannot go
// below zero, from own funds. It then goes live on a canary share of
// payers and widens only when its spend is in line with its plan. A
// monitor on every node compares live spend, discount ratio and share of
// payments discounted with the plan and pauses a campaign by itself within
// seconds of a breach; an operator can kill one at once. What is left of
// the budget returns to own funds when a campaign ends.
//
// Discounts plug into the payments through Discounter: the owner of a
// payment asks for a grant inside the payment's transaction and pays it
// with DiscountTransfer in the same batch as the payer's transfer, so no
// payment gets a discount the budget does not have.
package campaign
