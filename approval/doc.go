// Package approval is the platform's four-eyes rule and its audit log.
//
// An action that moves the platform's or a customer's money by an
// operator's decision (resolving a reconciliation difference, funding and
// starting a marketing campaign) is first proposed, then approved by a
// second operator, and only then carried out: the operator who proposed it
// (or last changed what it concerns) cannot approve it, whoever they are,
// the configured operator token included. The approval and what it carries
// out commit in one ledger batch transaction, so an approved proposal has
// always been carried out, and a proposal carried out has always been
// approved.
//
// What a proposal carries out is its kind's business: each kind (Kind)
// gives the op to run when it is approved. A proposal whose subject changes
// before it is decided is superseded (Supersede) and a new one filed, so an
// approval always covers what the approver saw.
//
// The audit log records who did what: every admin request that changes
// something (by a guard committed in the change's own transaction, see
// Guard), and every proposal, approval, rejection and supersession. It is
// append-only and listable.
package approval
