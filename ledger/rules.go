package ledger

import (
	"math"
	"math/bits"
	"sort"
)

// State is everything a batch of transfers can see: the accounts it touches
// (locked by the store), the committed transfers it names, and which pending
// transfers are already resolved. Apply changes it in memory only; the store
// then writes Created and Changed. State is the ledger's pure core: no I/O.
type State struct {
	Accounts  map[int64]*Account
	Transfers map[string]*Transfer     // committed or created in this batch
	Resolved  map[string]TransferFlags // pending id → PostPending or VoidPending

	created       []Transfer
	changed       map[int64]struct{}
	before        map[int64]Account // as loaded, for the commit's assertions
	lastTimestamp int64

	// Undo log for the linked chain being applied.
	inChain       bool
	chainAccounts map[int64]Account
	chainCreated  int
	chainResolved []string
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Accounts:  make(map[int64]*Account),
		Transfers: make(map[string]*Transfer),
		Resolved:  make(map[string]TransferFlags),
		changed:   make(map[int64]struct{}),
	}
}

// Created returns the transfers this state committed, in order.
func (s *State) Created() []Transfer { return s.created }

// Changed returns the accounts whose balances changed, in ascending id order.
// One row per account however many transfers touched it: this is what keeps a
// hot account from serialising the system.
func (s *State) Changed() []Account {
	out := make([]Account, 0, len(s.changed))
	for id := range s.changed {
		out = append(out, *s.Accounts[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Apply applies one caller's submission in order and returns a result per
// transfer. Linked transfers (Linked on all but the last of a chain) succeed
// or fail together; a failed chain leaves the state as it was before it.
// now is the commit time in unix nanoseconds; timestamps are made strictly
// increasing within the state.
func (s *State) Apply(events []Transfer, now int64) []TransferResult {
	results := make([]TransferResult, len(events))
	chainStart := -1
	for i := 0; i < len(events); i++ {
		t := events[i]
		linked := t.Flags&Linked != 0
		if linked && chainStart < 0 {
			chainStart = i
			s.beginChain()
		}
		var r TransferResult
		if linked && i == len(events)-1 {
			r = TransferLinkedEventChainOpen
		} else {
			r = s.applyOne(t, now)
		}
		if chainStart < 0 {
			results[i] = r
			continue
		}
		if !r.Succeeded() {
			s.rollbackChain()
			for j := chainStart; j < i; j++ {
				results[j] = TransferLinkedEventFailed
			}
			results[i] = r
			// The rest of the chain fails with it.
			for i+1 < len(events) && events[i].Flags&Linked != 0 {
				i++
				results[i] = TransferLinkedEventFailed
			}
			chainStart = -1
			continue
		}
		results[i] = r
		if !linked {
			s.endChain()
			chainStart = -1
		}
	}
	return results
}

func (s *State) beginChain() {
	s.inChain = true
	s.chainAccounts = make(map[int64]Account)
	s.chainCreated = len(s.created)
	s.chainResolved = s.chainResolved[:0]
}

func (s *State) endChain() {
	s.inChain = false
	s.chainAccounts = nil
}

func (s *State) rollbackChain() {
	for id, before := range s.chainAccounts {
		*s.Accounts[id] = before
	}
	for _, t := range s.created[s.chainCreated:] {
		delete(s.Transfers, t.ID)
	}
	s.created = s.created[:s.chainCreated]
	for _, id := range s.chainResolved {
		delete(s.Resolved, id)
	}
	s.endChain()
}

// touch records an account's before-image for chain rollback and marks it
// changed. A rolled-back account may stay marked: writing its unchanged
// balances back is harmless.
func (s *State) touch(a *Account) {
	if s.inChain {
		if _, ok := s.chainAccounts[a.ID]; !ok {
			s.chainAccounts[a.ID] = *a
		}
	}
	s.changed[a.ID] = struct{}{}
}

const resolvingFlags = PostPending | VoidPending

// applyOne runs the checks in the order of the TransferResult constants and,
// if all pass, applies the transfer.
func (s *State) applyOne(t Transfer, now int64) TransferResult {
	if r := validate(&t); r != TransferOK {
		return r
	}
	if e, ok := s.Transfers[t.ID]; ok {
		return compareExisting(e, &t)
	}
	resolving := t.Flags&resolvingFlags != 0
	var pending *Transfer
	if resolving {
		var r TransferResult
		if pending, r = s.checkPending(&t); r != TransferOK {
			return r
		}
	}
	dr, cr := s.Accounts[t.DebitAccountID], s.Accounts[t.CreditAccountID]
	if dr == nil {
		return TransferDebitAccountNotFound
	}
	if cr == nil {
		return TransferCreditAccountNotFound
	}
	if dr.Ledger != cr.Ledger {
		return TransferAccountsMustHaveTheSameLedger
	}
	if t.Ledger != dr.Ledger {
		return TransferMustHaveTheSameLedgerAsAccounts
	}
	if r := checkBalances(dr, cr, &t, pending); r != TransferOK {
		return r
	}
	s.commit(dr, cr, t, pending, now)
	return TransferOK
}

// validate checks the transfer's own shape, before anything is looked up.
func validate(t *Transfer) TransferResult {
	switch {
	case t.ID == "":
		return TransferIDMustNotBeEmpty
	case len(t.ID) > IDLenMax:
		return TransferIDTooLong
	case len(t.UserData) > UserDataLenMax:
		return TransferUserDataTooLong
	case bits.OnesCount16(uint16(t.Flags&(Pending|PostPending|VoidPending))) > 1:
		return TransferFlagsAreMutuallyExclusive
	case t.Flags&^transferFlagsKnown != 0:
		return TransferFlagsUnknown
	}
	if t.Flags&resolvingFlags != 0 {
		switch {
		case t.PendingID == "":
			return TransferPendingIDMustNotBeEmpty
		case t.PendingID == t.ID:
			return TransferPendingIDMustBeDifferent
		case t.DebitAccountID != 0 && t.DebitAccountID == t.CreditAccountID:
			return TransferAccountsMustBeDifferent
		case t.Amount < 0:
			return TransferAmountMustNotBeNegative
		}
		return TransferOK
	}
	switch {
	case t.PendingID != "":
		return TransferPendingIDMustBeEmpty
	case t.DebitAccountID == 0:
		return TransferDebitAccountIDMustNotBeZero
	case t.CreditAccountID == 0:
		return TransferCreditAccountIDMustNotBeZero
	case t.DebitAccountID == t.CreditAccountID:
		return TransferAccountsMustBeDifferent
	case t.Amount < 0:
		return TransferAmountMustNotBeNegative
	case t.Amount == 0:
		return TransferAmountMustNotBeZero
	case t.Ledger == 0:
		return TransferLedgerMustNotBeZero
	case t.Code == 0:
		return TransferCodeMustNotBeZero
	}
	return TransferOK
}

// compareExisting decides between Exists and ExistsWithDifferent*. A post or
// void may leave accounts, ledger, code (and for a full post, amount) zero to
// inherit them from the pending transfer; zero then matches what was stored.
func compareExisting(e, t *Transfer) TransferResult {
	inherit := t.Flags&resolvingFlags != 0
	same := func(asked, stored int64) bool { return asked == stored || (inherit && asked == 0) }
	switch {
	case e.Flags != t.Flags:
		return TransferExistsWithDifferentFlags
	case e.PendingID != t.PendingID:
		return TransferExistsWithDifferentPendingID
	case !same(t.DebitAccountID, e.DebitAccountID):
		return TransferExistsWithDifferentDebitAccountID
	case !same(t.CreditAccountID, e.CreditAccountID):
		return TransferExistsWithDifferentCreditAccountID
	case !same(t.Amount, e.Amount):
		return TransferExistsWithDifferentAmount
	case !same(int64(t.Ledger), int64(e.Ledger)):
		return TransferExistsWithDifferentLedger
	case !same(int64(t.Code), int64(e.Code)):
		return TransferExistsWithDifferentCode
	case e.UserData != t.UserData:
		return TransferExistsWithDifferentUserData
	}
	return TransferExists
}

// checkPending validates a post or void against the pending transfer it
// names and fills in what the post or void inherits from it.
func (s *State) checkPending(t *Transfer) (*Transfer, TransferResult) {
	p := s.Transfers[t.PendingID]
	switch {
	case p == nil:
		return nil, TransferPendingTransferNotFound
	case p.Flags&Pending == 0:
		return nil, TransferPendingTransferNotPending
	case t.DebitAccountID != 0 && t.DebitAccountID != p.DebitAccountID:
		return nil, TransferPendingTransferHasDifferentDebitAccountID
	case t.CreditAccountID != 0 && t.CreditAccountID != p.CreditAccountID:
		return nil, TransferPendingTransferHasDifferentCreditAccountID
	case t.Ledger != 0 && t.Ledger != p.Ledger:
		return nil, TransferPendingTransferHasDifferentLedger
	case t.Code != 0 && t.Code != p.Code:
		return nil, TransferPendingTransferHasDifferentCode
	case t.Flags&PostPending != 0 && t.Amount > p.Amount:
		return nil, TransferExceedsPendingTransferAmount
	case t.Flags&VoidPending != 0 && t.Amount != 0 && t.Amount != p.Amount:
		return nil, TransferPendingTransferHasDifferentAmount
	}
	switch s.Resolved[p.ID] {
	case PostPending:
		return nil, TransferPendingTransferAlreadyPosted
	case VoidPending:
		return nil, TransferPendingTransferAlreadyVoided
	}
	t.DebitAccountID, t.CreditAccountID = p.DebitAccountID, p.CreditAccountID
	t.Ledger, t.Code = p.Ledger, p.Code
	if t.Amount == 0 || t.Flags&VoidPending != 0 {
		t.Amount = p.Amount
	}
	return p, TransferOK
}

func addOverflows(a, b int64) bool { return a > math.MaxInt64-b }

// checkBalances refuses overflow and flagged accounts crossing zero. A post
// or void only releases or converts what the pending transfer reserved, so it
// can overflow posted balances but never exceed a limit.
func checkBalances(dr, cr *Account, t *Transfer, pending *Transfer) TransferResult {
	amt := t.Amount
	if pending != nil {
		if t.Flags&VoidPending != 0 {
			return TransferOK
		}
		switch {
		case addOverflows(dr.DebitsPosted, amt):
			return TransferOverflowsDebitsPosted
		case addOverflows(cr.CreditsPosted, amt):
			return TransferOverflowsCreditsPosted
		}
		return TransferOK
	}
	if t.Flags&Pending != 0 {
		switch {
		case addOverflows(dr.DebitsPending, amt):
			return TransferOverflowsDebitsPending
		case addOverflows(cr.CreditsPending, amt):
			return TransferOverflowsCreditsPending
		}
	} else {
		switch {
		case addOverflows(dr.DebitsPosted, amt):
			return TransferOverflowsDebitsPosted
		case addOverflows(cr.CreditsPosted, amt):
			return TransferOverflowsCreditsPosted
		}
	}
	switch {
	case addOverflows(dr.DebitsPending, dr.DebitsPosted) || addOverflows(dr.DebitsPending+dr.DebitsPosted, amt):
		return TransferOverflowsDebits
	case addOverflows(cr.CreditsPending, cr.CreditsPosted) || addOverflows(cr.CreditsPending+cr.CreditsPosted, amt):
		return TransferOverflowsCredits
	case dr.Flags&DebitsMustNotExceedCredits != 0 && dr.DebitsPending+dr.DebitsPosted+amt > dr.CreditsPosted:
		return TransferExceedsCredits
	case cr.Flags&CreditsMustNotExceedDebits != 0 && cr.CreditsPending+cr.CreditsPosted+amt > cr.DebitsPosted:
		return TransferExceedsDebits
	}
	return TransferOK
}

func (s *State) commit(dr, cr *Account, t Transfer, pending *Transfer, now int64) {
	s.touch(dr)
	s.touch(cr)
	switch {
	case pending != nil:
		dr.DebitsPending -= pending.Amount
		cr.CreditsPending -= pending.Amount
		if t.Flags&PostPending != 0 {
			dr.DebitsPosted += t.Amount
			cr.CreditsPosted += t.Amount
		}
		s.Resolved[pending.ID] = t.Flags & resolvingFlags
		if s.inChain {
			s.chainResolved = append(s.chainResolved, pending.ID)
		}
	case t.Flags&Pending != 0:
		dr.DebitsPending += t.Amount
		cr.CreditsPending += t.Amount
	default:
		dr.DebitsPosted += t.Amount
		cr.CreditsPosted += t.Amount
	}
	assertAccount(dr)
	assertAccount(cr)
	if now <= s.lastTimestamp {
		now = s.lastTimestamp + 1
	}
	s.lastTimestamp = now
	t.Timestamp = now
	t.DebitBalance, t.CreditBalance = dr.Balance(), cr.Balance()
	s.created = append(s.created, t)
	s.Transfers[t.ID] = &t
}

// assertAccount stops the process if the rules ever produced an impossible
// account: that is a bug in this file, not a bad request.
func assertAccount(a *Account) {
	if a.DebitsPending < 0 || a.DebitsPosted < 0 || a.CreditsPending < 0 || a.CreditsPosted < 0 {
		panic("ledger: negative balance component on account")
	}
	if a.Flags&DebitsMustNotExceedCredits != 0 && a.DebitsPending+a.DebitsPosted > a.CreditsPosted {
		panic("ledger: account crossed debits_must_not_exceed_credits")
	}
	if a.Flags&CreditsMustNotExceedDebits != 0 && a.CreditsPending+a.CreditsPosted > a.DebitsPosted {
		panic("ledger: account crossed credits_must_not_exceed_debits")
	}
}

// CreateAccount decides whether account a may be created, given the account
// already stored under its id (nil when none). Checks run in the order of the
// AccountResult constants.
func CreateAccount(existing *Account, a Account) AccountResult {
	switch {
	case a.ID == 0:
		return AccountIDMustNotBeZero
	case a.Flags&DebitsMustNotExceedCredits != 0 && a.Flags&CreditsMustNotExceedDebits != 0:
		return AccountFlagsAreMutuallyExclusive
	case a.Flags&^accountFlagsKnown != 0:
		return AccountFlagsUnknown
	case a.Ledger == 0:
		return AccountLedgerMustNotBeZero
	case a.Code == 0:
		return AccountCodeMustNotBeZero
	case a.DebitsPending != 0 || a.DebitsPosted != 0 || a.CreditsPending != 0 || a.CreditsPosted != 0:
		return AccountBalancesMustBeZero
	}
	if existing == nil {
		return AccountOK
	}
	switch {
	case existing.Flags != a.Flags:
		return AccountExistsWithDifferentFlags
	case existing.Ledger != a.Ledger:
		return AccountExistsWithDifferentLedger
	case existing.Code != a.Code:
		return AccountExistsWithDifferentCode
	}
	return AccountExists
}
