package banksim

import "sync/atomic"

// Stats counts what one bank did since the simulator started.
type Stats struct {
	// Requests is every request to the bank API and ebank pages.
	Requests int64 `json:"requests"`
	// Accepted counts new debits and credits recorded in the journal;
	// Succeeded and Failed count their outcomes once decided.
	Accepted  int64 `json:"accepted"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	// Rejected is 503 SYSTEM_BUSY for want of capacity; Errors is injected
	// 500/503; Outages and Maintenance count requests refused for those.
	Rejected    int64 `json:"rejected"`
	Errors      int64 `json:"errors"`
	Outages     int64 `json:"outages"`
	Maintenance int64 `json:"maintenance"`
	// Timeouts counts answers withheld after the bank carried a request
	// out.
	Timeouts int64 `json:"timeouts"`
	// CallbacksSent counts attempts (a retry is another attempt);
	// CallbacksDelivered those answered 2xx; CallbacksLost callbacks never
	// sent; CallbacksDuplicated callbacks sent twice; CallbacksGaveUp
	// callbacks abandoned after their last attempt.
	CallbacksSent       int64 `json:"callbacks_sent"`
	CallbacksDelivered  int64 `json:"callbacks_delivered"`
	CallbacksLost       int64 `json:"callbacks_lost"`
	CallbacksDuplicated int64 `json:"callbacks_duplicated"`
	CallbacksGaveUp     int64 `json:"callbacks_gave_up"`
}

type counters struct {
	requests, accepted, succeeded, failed            atomic.Int64
	rejected, errors, outages, maintenance, timeouts atomic.Int64
	callbacksSent, callbacksDelivered, callbacksLost atomic.Int64
	callbacksDuplicated, callbacksGaveUp             atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Requests: c.requests.Load(), Accepted: c.accepted.Load(), Succeeded: c.succeeded.Load(),
		Failed: c.failed.Load(), Rejected: c.rejected.Load(), Errors: c.errors.Load(),
		Outages: c.outages.Load(), Maintenance: c.maintenance.Load(), Timeouts: c.timeouts.Load(),
		CallbacksSent: c.callbacksSent.Load(), CallbacksDelivered: c.callbacksDelivered.Load(),
		CallbacksLost: c.callbacksLost.Load(), CallbacksDuplicated: c.callbacksDuplicated.Load(),
		CallbacksGaveUp: c.callbacksGaveUp.Load(),
	}
}
