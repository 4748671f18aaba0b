package invoiceapp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, day := range []string{"1970-01-01", "1969-12-31", "2026-05-31", "2099-12-31", "1900-02-28"} {
		d, err := ParseDate(day)
		if err != nil {
			t.Fatal(err)
		}
		c := cursor{IssueDate: d, ID: uuid.Must(uuid.NewV7())}
		s := c.encode()
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("cursor %q is not URL-safe", s)
		}
		got, err := decodeCursor(s)
		if err != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
		if !got.IssueDate.Equal(c.IssueDate.Time) || got.ID != c.ID {
			t.Errorf("round trip of %v gave %v", c, got)
		}
	}
}

func TestCursorInvalid(t *testing.T) {
	valid := cursor{IssueDate: DateOf(time.Now()), ID: uuid.Must(uuid.NewV7())}.encode()
	for _, s := range []string{"x", "!!!!", valid[:len(valid)-2], valid + "AA", "B" + valid[1:]} {
		_, err := decodeCursor(s)
		if e := AsError(err); e == nil || e.Code != CodeInvalidCursor || e.Field != "cursor" {
			t.Errorf("decodeCursor(%q) = %v, want invalid_cursor", s, err)
		}
	}
}

func TestListQueryParse(t *testing.T) {
	cur := cursor{IssueDate: DateOf(time.Now()), ID: uuid.Must(uuid.NewV7())}.encode()
	cases := []struct {
		q         ListQuery
		wantField string
		limit     int
	}{
		{q: ListQuery{}, limit: DefaultListLimit},
		{q: ListQuery{Limit: "1"}, limit: 1},
		{q: ListQuery{Limit: "100", Status: "overdue", From: "2026-01-01", To: "2026-01-01", Cursor: cur}, limit: 100},
		{q: ListQuery{Limit: "0"}, wantField: "limit"},
		{q: ListQuery{Limit: "101"}, wantField: "limit"},
		{q: ListQuery{Limit: "ten"}, wantField: "limit"},
		{q: ListQuery{Status: "late"}, wantField: "status"},
		{q: ListQuery{From: "2026-13-01"}, wantField: "from"},
		{q: ListQuery{To: "yesterday"}, wantField: "to"},
		{q: ListQuery{From: "2026-02-01", To: "2026-01-31"}, wantField: "to"},
		{q: ListQuery{Cursor: "nope"}, wantField: "cursor"},
	}
	for _, tc := range cases {
		f, err := tc.q.parse()
		if tc.wantField != "" {
			if e := AsError(err); e == nil || e.Kind != KindInvalid || e.Field != tc.wantField {
				t.Errorf("%+v: error %v, want one about %s", tc.q, err, tc.wantField)
			}
			continue
		}
		if err != nil || f.limit != tc.limit {
			t.Errorf("%+v: limit %d err %v, want limit %d", tc.q, f.limit, err, tc.limit)
		}
	}
}

func TestCustomerIDs(t *testing.T) {
	seen := map[int64]bool{}
	shards := map[int64]bool{}
	for range 2000 {
		id, err := RandomCustomerID()
		if err != nil {
			t.Fatal(err)
		}
		if id < MinGeneratedCustomerID || id >= MaxGeneratedCustomerID {
			t.Fatalf("id %d out of range", id)
		}
		if seen[id] {
			t.Fatalf("id %d drawn twice", id)
		}
		seen[id] = true
		shards[id%16] = true
	}
	if len(shards) != 16 {
		t.Errorf("random ids cover %d of 16 shards", len(shards))
	}
	a, b := CustomerIDForKey("k1"), CustomerIDForKey("k1")
	if a != b || a == CustomerIDForKey("k2") {
		t.Errorf("CustomerIDForKey: k1 %d, k1 again %d, k2 %d", a, b, CustomerIDForKey("k2"))
	}
	if a < MinGeneratedCustomerID || a >= MaxGeneratedCustomerID {
		t.Errorf("CustomerIDForKey out of range: %d", a)
	}
}

func TestNewIDTimeOrdered(t *testing.T) {
	prev, _ := NewID()
	for range 100 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if id.Version() != 7 || strings.Compare(id.String(), prev.String()) <= 0 {
			t.Fatalf("ids not increasing v7: %s after %s", id, prev)
		}
		prev = id
	}
}

func TestIdempotencyKey(t *testing.T) {
	for _, bad := range []string{"", strings.Repeat("k", MaxIdempotencyKeyLen+1), "has space", "tab\t", "é"} {
		_, err := NewIdempotencyKey(bad, "POST", "/v1/customers", nil)
		if e := AsError(err); e == nil || e.Field != "Idempotency-Key" {
			t.Errorf("key %q accepted (err %v)", bad, err)
		}
	}
	base, err := NewIdempotencyKey(strings.Repeat("k", MaxIdempotencyKeyLen), "POST", "/v1/customers", []byte(`{"name":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := NewIdempotencyKey(base.Key, "POST", "/v1/customers", []byte(`{"name":"a"}`))
	if same.Fingerprint != base.Fingerprint {
		t.Error("same request, different fingerprints")
	}
	for _, other := range []struct{ method, path, body string }{
		{"POST", "/v1/customers", `{"name":"b"}`},
		{"POST", "/v1/customers", `{"name": "a"}`},
		{"POST", "/v1/customers/1/invoices", `{"name":"a"}`},
		{"PUT", "/v1/customers", `{"name":"a"}`},
	} {
		k, _ := NewIdempotencyKey(base.Key, other.method, other.path, []byte(other.body))
		if k.Fingerprint == base.Fingerprint {
			t.Errorf("%+v has the fingerprint of the base request", other)
		}
	}
}

func TestDate(t *testing.T) {
	d, err := ParseDate("2026-01-31")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.AddMonths(1).String(); got != "2026-02-01" {
		t.Errorf("AddMonths(1) = %s", got)
	}
	if got := d.AddMonths(11).String(); got != "2026-12-01" {
		t.Errorf("AddMonths(11) = %s", got)
	}
	if got := d.AddMonths(12).String(); got != "2027-01-01" {
		t.Errorf("AddMonths(12) = %s", got)
	}
	if got := DateOf(time.Date(2026, 3, 1, 23, 30, 0, 0, time.FixedZone("x", -3*3600))).String(); got != "2026-03-02" {
		t.Errorf("DateOf in UTC = %s", got)
	}
	b, _ := json.Marshal(struct{ D Date }{d})
	if string(b) != `{"D":"2026-01-31"}` {
		t.Errorf("JSON %s", b)
	}
	var back struct{ D Date }
	if err := json.Unmarshal(b, &back); err != nil || back.D != d {
		t.Errorf("unmarshal: %v %v", back.D, err)
	}
	if err := json.Unmarshal([]byte(`{"D":"31/01/2026"}`), &back); err == nil {
		t.Error("bad date accepted")
	}
	if _, err := ParseDate("2026-02-29"); err == nil {
		t.Error("2026-02-29 accepted")
	}
}

func TestPartitionDDL(t *testing.T) {
	d, _ := ParseDate("2026-12-17")
	if got := PartitionName(d); got != "invoices_2026_12" {
		t.Errorf("PartitionName = %s", got)
	}
	want := `CREATE TABLE IF NOT EXISTS invoices_2026_12 PARTITION OF invoices FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')`
	if got := partitionDDL(d); got != want {
		t.Errorf("partitionDDL =\n%s\nwant\n%s", got, want)
	}
}
