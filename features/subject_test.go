package features

import (
	"encoding/base64"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestOrderToken(t *testing.T) {
	for _, c := range []struct{ id, tok string }{
		{"SO-100231", "SO-100231"},
		{"so_1:2-B", "so_1:2-B"},
		{"SO 1/2", "~U08gMS8y"},
		{"SO.1", "~U08uMQ"},
		{"*", "~Kg"},
		{">", "~Pg"},
		{"~x", "~fng"},
		{"ordre-été", "~b3JkcmUtw6l0w6k"},
		{strings.Repeat("a", 128), strings.Repeat("a", 128)},
		{strings.Repeat("a", 129), "~" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("a", 129)))},
	} {
		if got := OrderToken(c.id); got != c.tok {
			t.Errorf("OrderToken(%q) = %q, want %q", c.id, got, c.tok)
		}
		if c.id == strings.Repeat("a", 129) {
			continue // longer than an order id may be
		}
		if id, ok := OrderFromToken(c.tok); !ok || id != c.id {
			t.Errorf("OrderFromToken(%q) = %q, %v, want %q", c.tok, id, ok, c.id)
		}
		if !tokenOf(c.tok, c.id) {
			t.Errorf("tokenOf(%q, %q) = false", c.tok, c.id)
		}
	}
	for _, tok := range []string{"", "~", "~U08", "~U08gMS8y=", "~U08gMR", "a.b", "a b", "~~", "~U08tMQ", strings.Repeat("a", 129)} {
		// ~U08tMQ is "SO-1", a safe id: its token is SO-1, not the escape.
		// ~U08gMR has non-zero padding bits: not canonical.
		if id, ok := OrderFromToken(tok); ok {
			t.Errorf("OrderFromToken(%q) = %q, true, want false", tok, id)
		}
	}
}

// TestOrderTokenRoundTrips: for random ids, safe or not, OrderFromToken reverses
// OrderToken, the token is one subject token, and tokenOf agrees with OrderToken.
func TestOrderTokenRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		id := randomID(r)
		tok := OrderToken(id)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") || len(tok) > 1+172 {
			t.Fatalf("OrderToken(%q) = %q: not one safe subject token", id, tok)
		}
		if got, ok := OrderFromToken(tok); !ok || got != id {
			t.Fatalf("OrderFromToken(OrderToken(%q)) = %q, %v", id, got, ok)
		}
		if !tokenOf(tok, id) {
			t.Fatalf("tokenOf(%q, %q) = false", tok, id)
		}
		other := randomID(r)
		if tokenOf(tok, other) != (OrderToken(other) == tok) {
			t.Fatalf("tokenOf(%q, %q) disagrees with OrderToken", tok, other)
		}
	}
}

// randomID draws an order id: mostly safe ones, else any bytes, 1..128 long.
func randomID(r *rand.Rand) string {
	const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:"
	n := 1 + r.IntN(128)
	if r.IntN(4) == 0 {
		n = 1 + r.IntN(12)
	}
	b := make([]byte, n)
	unsafe := r.IntN(3) == 0
	for i := range b {
		if unsafe && r.IntN(4) == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = safe[r.IntN(len(safe))]
		}
	}
	return string(b)
}

func FuzzOrderFromToken(f *testing.F) {
	for _, s := range []string{"SO-1", "~U08gMS8y", "~", "", "~Kg", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, ok := OrderFromToken(tok)
		if ok && OrderToken(id) != tok {
			t.Fatalf("OrderFromToken(%q) = %q, whose token is %q", tok, id, OrderToken(id))
		}
		if ok != tokenOf(tok, id) && id != "" {
			t.Fatalf("tokenOf(%q, %q) = %v, OrderFromToken says %v", tok, id, !ok, ok)
		}
		if len(tok) > 0 && len(tok) <= maxIDBytes {
			if OrderToken(tok) != tok && ok && id == tok {
				t.Fatalf("%q decoded to itself but is not its own token", tok)
			}
		}
	})
}

// TestPartitionIsFNV1a: Partition is FNV-1a 32 of the token modulo n, as the
// server's partition(n,3) (pipeline's tests check it against a real server).
func TestPartitionIsFNV1a(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		tok := OrderToken(randomID(r))
		n := 1 + r.IntN(64)
		h := fnv.New32a()
		h.Write([]byte(tok))
		if got, want := Partition(tok, n), int(h.Sum32()%uint32(n)); got != want {
			t.Fatalf("Partition(%q, %d) = %d, want %d", tok, n, got, want)
		}
	}
	if Partition("SO-1", 16) != 13 || Partition("SO-1", 0) != 0 {
		t.Errorf("Partition(SO-1, 16) = %d, Partition(SO-1, 0) = %d, want 13 and 0", Partition("SO-1", 16), Partition("SO-1", 0))
	}
}

func TestSubject(t *testing.T) {
	for _, c := range []struct{ typ, id, want string }{
		{TypePickConfirmed, "SO-100231", "orders.pick.confirmed.SO-100231"},
		{TypeNoteAdded, "SO 1", "orders.note.added.~U08gMQ"},
		{TypeWarehouseLoad, "", "orders.warehouse.load"},
		{TypeCarrierPerformance, "SO-1", "orders.carrier.performance"},
		{TypeOrderCreated, "", "orders.order.created"},
	} {
		if got := Subject(c.typ, c.id); got != c.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", c.typ, c.id, got, c.want)
		}
		if got := string(AppendSubject([]byte("x"), c.typ, c.id)); got != "x"+c.want {
			t.Errorf("AppendSubject(%q, %q) = %q, want x%s", c.typ, c.id, got, c.want)
		}
	}
	if PartitionSubject(7) != "orders.7.*.*.*" {
		t.Errorf("PartitionSubject(7) = %q", PartitionSubject(7))
	}
}

func TestParseStoredSubject(t *testing.T) {
	type parsed struct {
		p        int
		typ, tok string
		ok       bool
	}
	for _, c := range []struct {
		subj string
		want parsed
	}{
		{"orders.13.pick.confirmed.SO-1", parsed{13, "pick.confirmed", "SO-1", true}},
		{"orders.0.note.added.~U08gMQ", parsed{0, "note.added", "~U08gMQ", true}},
		{"orders.warehouse.load", parsed{-1, "warehouse.load", "", true}},
		{"orders.3.x", parsed{-1, "3.x", "", true}},
		{"orders.pick.confirmed.SO-1", parsed{}},
		{"orders.x", parsed{}},
		{"orders.", parsed{}},
		{"orders.01.pick.confirmed.SO-1", parsed{}},
		{"orders.-1.pick.confirmed.SO-1", parsed{}},
		{"orders.a.pick.confirmed.SO-1", parsed{}},
		{"orders.1.pick.confirmed.", parsed{}},
		{"orders.1..confirmed.SO-1", parsed{}},
		{"orders.1.pick.confirmed.SO.1", parsed{}},
		{"orders..load", parsed{}},
		{"orders.load.", parsed{}},
		{"erp.1.pick.confirmed.SO-1", parsed{}},
		{"", parsed{}},
	} {
		p, typ, tok, ok := ParseStoredSubject(c.subj)
		if got := (parsed{p, typ, tok, ok}); !ok && c.want.ok || ok && got != c.want {
			t.Errorf("ParseStoredSubject(%q) = %+v, want %+v", c.subj, got, c.want)
		}
	}
}

func TestCheckSubject(t *testing.T) {
	order := &Event{ID: "e-1", Type: TypeNoteAdded, OrderID: "SO-1", OccurredAt: time.Now(), Schema: 1}
	escaped := &Event{ID: "e-2", Type: TypeNoteAdded, OrderID: "SO 1", OccurredAt: time.Now(), Schema: 1}
	load := &Event{ID: "e-3", Type: TypeWarehouseLoad, OccurredAt: time.Now(), Schema: 1, Data: EventData{Warehouse: "DAL"}}
	for _, c := range []struct {
		subj   string
		ev     *Event
		reason string
		detail string // a part of the detail
	}{
		{"orders.13.note.added.SO-1", order, "", ""},
		{"orders.4.note.added.~U08gMQ", escaped, "", ""},
		{"orders.warehouse.load", load, "", ""},
		{"", order, "", ""},
		{"orders.13.note.added.SO-2", order, ReasonSubjectMismatch, "SO-2"},
		{"orders.13.note.added.SO 1", escaped, ReasonSubjectMismatch, "~U08gMQ"},
		{"orders.13.pick.confirmed.SO-1", order, ReasonSubjectMismatch, "pick.confirmed"},
		{"orders.13.warehouse.load.DAL", load, ReasonSubjectMismatch, "orders.warehouse.load"},
		{"orders.carrier.performance", load, ReasonSubjectMismatch, "carrier.performance"},
		{"orders.note.added", order, ReasonUnpartitioned, "orders.<type>.<order_id>"},
		{"orders.pick.confirmed", order, ReasonUnpartitioned, "orders.<type>.<order_id>"},
		{"orders.note", order, ReasonSubjectMismatch, "orders.note"},
		{"erp.note.added", order, ReasonSubjectMismatch, "erp.note.added"},
	} {
		reason, detail := CheckSubject(c.subj, c.ev)
		if reason != c.reason || !strings.Contains(detail, c.detail) || (reason == "") != (detail == "") {
			t.Errorf("CheckSubject(%q, %s %s) = %q, %q, want %q with %q", c.subj, c.ev.Type, c.ev.OrderID, reason, detail, c.reason, c.detail)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		CheckSubject("orders.13.note.added.SO-1", order)
		CheckSubject("orders.4.note.added.~U08gMQ", escaped)
		CheckSubject("orders.warehouse.load", load)
	})
	if allocs != 0 {
		t.Errorf("CheckSubject of agreeing subjects: %v allocations, want 0", allocs)
	}
}

// BenchmarkCheckSubject is the subject check each message of ORDERS gets at
// decode, on an agreeing stored subject.
//
//	go test -run X -bench CheckSubject ./features
func BenchmarkCheckSubject(b *testing.B) {
	ev := &Event{ID: "e-1", Type: TypePickConfirmed, OrderID: "SO-1-100231", Schema: 1}
	subj := "orders.7.pick.confirmed.SO-1-100231"
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := CheckSubject(subj, ev); r != "" {
			b.Fatal(r)
		}
	}
}
