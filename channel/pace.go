package channel

import (
	"context"
	"sync"
	"time"
)

// Several nodes on one database. A bank's background work (handing out
// due sends and inquiries, claiming queued withdrawals, statement sweeps,
// taking up again what waited out an outage) is done by one node at a
// time: the holder of the bank's lease (BankLease, package node), which
// runs LeadBank while it holds it. That node's background bucket is then
// the bank's whole background pace, however many nodes there are, and
// nobody else inquires about or pays out the same rows. Payments are made
// by whichever node the person reached, so the bank's capacity is divided
// among the running nodes (ShareCapacity): every node gets an equal part
// of what background work leaves, and the leading node the background
// share besides. Without UseLeases (one process), every bank is led here
// and has its whole capacity.

// leadStopWaitMax bounds how long LeadBank waits, once its lease is gone,
// for the bank's background calls already in flight: a call still out
// after that overlaps the next holder's first poll, which is harmless (the
// bank deduplicates on the request id, and every outcome is saved under
// the row's lock) but spends a little of the pace twice.
const leadStopWaitMax = 2 * time.Second

// pace is which banks this node leads and how many nodes share the banks.
type pace struct {
	mu sync.Mutex
	// holds, when set, says whether this node holds a lease now; nil
	// (one process) leads every bank.
	holds func(lease string) bool
	nodes int // running nodes, at least 1
}

// BankLease names the lease of a bank's background work.
func BankLease(bank string) string { return "bank:" + bank }

// UseLeases makes the service lead only the banks whose lease holds says
// this node holds (the lease's job being LeadBank), sharing each bank's
// capacity with the other nodes. Call it before Run.
func (s *Service) UseLeases(holds func(lease string) bool) {
	s.pace.mu.Lock()
	s.pace.holds = holds
	s.pace.nodes = max(s.pace.nodes, 1)
	s.pace.mu.Unlock()
	for _, b := range s.order {
		s.setRate(b)
	}
}

// leads reports whether this node does b's background work now.
func (s *Service) leads(b *bank) bool {
	s.pace.mu.Lock()
	holds := s.pace.holds
	s.pace.mu.Unlock()
	return holds == nil || holds(BankLease(b.name))
}

// LeadBank does the bank's background work on this node until ctx ends;
// then it drops the jobs not yet started and waits a moment for the calls
// in flight, so that the lease can be handed on.
func (s *Service) LeadBank(ctx context.Context, bank string) {
	b := s.banks[bank]
	if b == nil {
		return
	}
	s.setRate(b)
	// What the last holder knew of the queue is not known here: claim at
	// once, and the claim finds out.
	b.queued.Store(max(b.queued.Load(), 1))
	s.Kick()
	<-ctx.Done()
	s.setRate(b)
	for drained := false; !drained; {
		select {
		case j := <-b.jobs:
			if j.probeOnly {
				b.probing.Store(false)
			} else {
				s.unmarkInflight(j.txnID)
			}
		default:
			drained = true
		}
	}
	deadline := time.Now().Add(leadStopWaitMax)
	for (b.calls.Load() > 0 || b.sweep.Load()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// ShareCapacity tells the service how many nodes run, each making
// payments at the banks.
func (s *Service) ShareCapacity(nodes int) {
	s.pace.mu.Lock()
	changed := s.pace.nodes != max(nodes, 1)
	s.pace.nodes = max(nodes, 1)
	s.pace.mu.Unlock()
	if changed {
		for _, b := range s.order {
			s.setRate(b)
		}
	}
}

// setRate sets b's payment bucket to this node's part of the bank's
// capacity.
func (s *Service) setRate(b *bank) {
	bg := b.bg.Rate()
	capacity := bg / s.cfg.BackgroundShare
	s.pace.mu.Lock()
	holds, nodes := s.pace.holds, s.pace.nodes
	s.pace.mu.Unlock()
	rate := capacity
	if holds != nil && nodes > 1 {
		rate = (capacity - bg) / float64(nodes)
		if holds(BankLease(b.name)) {
			rate += bg
		}
	}
	if rate != b.bucket.Rate() {
		b.bucket.SetRate(rate, burstOf(rate))
	}
}
