package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestOCELWriterWritesAWellFormedLog: the log of a small run is OCEL 2.0 JSON
// with objects before events; every relationship names an object of the log;
// every object and event type is declared; shipments reach their orders, the
// Ship event only through its shipment; context events touch no order;
// duplicate deliveries are left out.
func TestOCELWriterWritesAWellFormedLog(t *testing.T) {
	w, err := NewOCELWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := New(Options{Orders: 60, Seed: 3, Scenario: WarehouseOutage, Faults: Faults{Duplicates: 0.05}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	if err := s.Run(context.Background(), func(ev *Emitted) error {
		ids[ev.ID()] = true
		return w.Add(ev)
	}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Duplicates == 0 || w.Events() != len(ids) {
		t.Fatalf("%d duplicates delivered; %d events in the log, want %d (each once)", st.Duplicates, w.Events(), len(ids))
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if i, j := bytes.Index(buf.Bytes(), []byte(`"objects":`)), bytes.Index(buf.Bytes(), []byte(`"events":`)); i < 0 || j < i {
		t.Fatalf("objects at %d, events at %d: want objects first", i, j)
	}
	type rel struct{ ObjectID, Qualifier string }
	type decl struct {
		Name       string
		Attributes []struct{ Name, Type string }
	}
	var log struct {
		ObjectTypes, EventTypes []decl
		Objects                 []struct {
			ID, Type      string
			Attributes    []struct{ Name, Time string }
			Relationships []rel
		}
		Events []struct {
			ID, Type, Time string
			Attributes     []struct{ Name string }
			Relationships  []rel
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	declared := func(ds []decl) map[string]map[string]bool {
		m := map[string]map[string]bool{}
		for _, d := range ds {
			m[d.Name] = map[string]bool{}
			for _, a := range d.Attributes {
				if a.Type == "" {
					t.Errorf("%s.%s has no type", d.Name, a.Name)
				}
				m[d.Name][a.Name] = true
			}
		}
		return m
	}
	objTypes, evTypes := declared(log.ObjectTypes), declared(log.EventTypes)
	typeOf := map[string]string{}
	for _, o := range log.Objects {
		if o.ID == "" || typeOf[o.ID] != "" {
			t.Errorf("object id %q empty or twice", o.ID)
		}
		typeOf[o.ID] = o.Type
		for _, a := range o.Attributes {
			if !objTypes[o.Type][a.Name] || a.Time == "" {
				t.Errorf("object %s: attribute %s undeclared or untimed", o.ID, a.Name)
			}
		}
	}
	for _, o := range log.Objects {
		for _, r := range o.Relationships {
			if typeOf[r.ObjectID] == "" {
				t.Errorf("object %s relates to %q, not in the log", o.ID, r.ObjectID)
			}
			if o.Type == "shipment" && (r.Qualifier != "for order" || typeOf[r.ObjectID] != "order") && r.Qualifier != "carried by" {
				t.Errorf("shipment %s: relationship %+v", o.ID, r)
			}
		}
	}
	acts := map[string]bool{}
	for _, a := range OCELActivities {
		acts[a] = true
	}
	seen := map[string]int{}
	for _, e := range log.Events {
		seen[e.Type]++
		if !acts[e.Type] || evTypes[e.Type] == nil {
			t.Errorf("event %s: type %q is no declared activity", e.ID, e.Type)
		}
		for _, a := range e.Attributes {
			if !evTypes[e.Type][a.Name] {
				t.Errorf("event %s: attribute %s undeclared", e.ID, a.Name)
			}
		}
		touches := map[string]bool{}
		for _, r := range e.Relationships {
			if typeOf[r.ObjectID] == "" {
				t.Errorf("event %s relates to %q, not in the log", e.ID, r.ObjectID)
			}
			touches[typeOf[r.ObjectID]] = true
		}
		switch {
		case e.Type == "Ship" && (touches["order"] || !touches["shipment"]):
			t.Errorf("Ship %s touches %v: want the shipment, not the order", e.ID, touches)
		case strings.HasPrefix(e.Type, "Report ") && e.Type != "Report Shortfall" && touches["order"]:
			t.Errorf("context event %s touches an order", e.ID)
		}
	}
	for _, a := range []string{"Create Order", "Place Credit Hold", "Ship", "Report Warehouse Load", "Report Carrier Performance"} {
		if seen[a] == 0 {
			t.Errorf("no %q event: %v", a, seen)
		}
	}
}
