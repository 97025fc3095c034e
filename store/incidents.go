package store

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Incident records (the pipeline encodes them; opaque here):
//
//	I/<incident>                   an incident: exceptions of several orders with one
//	                               cause, open or closed (closed ones expire after the
//	                               retention); ids sort by when the incident started
//
// An incident is not keyed by order: it spans orders, and stays with this
// instance when one of its orders' partitions moves (DropPartition leaves it).
// It is written by the pipeline batch alone, in the commit of the exception
// that joined or left it.
const pIncident = "I/"

// PutIncident stores an incident record under id; a ttl above zero lets it
// expire (a closed one).
func (b *Batch) PutIncident(id string, v []byte, ttl time.Duration) error {
	e := badger.NewEntry(key(pIncident, id), v)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return b.setEntry(e)
}

// Incident returns the record of an incident; ErrNotFound when there is none.
func (s *Store) Incident(id string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = get(txn, key(pIncident, id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read incident %s: %w", id, err)
	}
	return out, nil
}

// Incidents calls fn with every stored incident record, in id order (the
// order they started in). v is valid during the call only.
func (s *Store) Incidents(fn func(v []byte) error) error {
	return s.eachRecord(pIncident, "incidents", fn)
}

// IncidentsPage returns up to limit incident records that match accepts, in
// id order, starting after the id after ("" for the first page), and the id
// of the last one returned when more may follow ("" on the last page).
func (s *Store) IncidentsPage(after string, limit int, match func(v []byte) bool) ([][]byte, string, error) {
	return s.recordsPage(pIncident, "incidents", after, limit, MaxPageScan, match)
}
