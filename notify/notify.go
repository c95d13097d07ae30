// Package notify tells merchants what happened: status changes are written
// to a durable outbox in the same transaction as the change, and a worker
// delivers them, signed, to the merchant's notify_url with retries spread
// over more than 25 hours.
package notify
