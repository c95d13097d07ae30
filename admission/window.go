package admission

import "time"

// Window is an announced maintenance window: closed from Start, open again
// at End.
type Window struct {
	Start, End time.Time
}

// Closed returns the end of the window in force at now, of several the one
// ending last, and whether any is.
func Closed(windows []Window, now time.Time) (end time.Time, closed bool) {
	for _, w := range windows {
		if !now.Before(w.Start) && now.Before(w.End) && (!closed || w.End.After(end)) {
			end, closed = w.End, true
		}
	}
	return end, closed
}
