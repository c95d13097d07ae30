package trade

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"testing"
	"time"

	"zhifu/internal/testdb"
	"zhifu/ledger"
)

// TestBillParts stores bills of every length around the part size and
// reads each back exactly as written, once: a second finish of the same
// bill finds it written and changes nothing.
func TestBillParts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		ctx := context.Background()
		st := open()
		now := time.Unix(1_750_000_000, 0)
		b := ledger.NewBatcher(st, func() time.Time { return now })
		defer b.Close()
		s := New(Config{Store: st, Batcher: b})
		for _, n := range []int{0, 1, billPartLinesMax - 2, billPartLinesMax - 1, billPartLinesMax, 2*billPartLinesMax + 3} {
			key := billKey{"m0000000001", fmt.Sprintf("2025-01-%02d", n%28+1), BillSignCustomer}
			var want bytes.Buffer
			all := csv.NewWriter(&want)
			for i := range n + 1 {
				all.Write(record(i))
			}
			all.Flush()
			write := func() bool {
				pw := &partWriter{ctx: ctx, s: s, key: key}
				pw.cw = csv.NewWriter(&pw.buf)
				for i := range n + 1 { // the header and n lines
					if err := pw.Write(record(i)); err != nil {
						t.Fatal(err)
					}
				}
				ok, err := pw.finish(now)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !write() {
				t.Fatalf("%d lines: not written", n)
			}
			if write() {
				t.Fatalf("%d lines: written twice", n)
			}
			bill := &Bill{s: s, merchantID: key.merchantID, date: key.date, typ: key.typ, Stored: true}
			var got bytes.Buffer
			if err := bill.writeStored(ctx, &got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("%d lines: stored %d bytes, wrote %d", n, got.Len(), want.Len())
			}
			var lines, parts int64
			if err := st.Reader().QueryRow(ctx, `SELECT lines, parts FROM bills WHERE merchant_id = ? AND bill_date = ?
				AND bill_type = ?`, key.merchantID, key.date, key.typ).Scan(&lines, &parts); err != nil {
				t.Fatal(err)
			}
			if lines != int64(n) || parts != int64(max(1, (n+1+billPartLinesMax-1)/billPartLinesMax)) {
				t.Fatalf("%d lines: bills row says %d lines in %d parts", n, lines, parts)
			}
		}
	})
}

func record(i int) []string {
	return []string{fmt.Sprint(i), "line, with a comma", "引号\"", "多\n行"}
}
