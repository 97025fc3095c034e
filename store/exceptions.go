package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Exception records, and the deadline watches of earlier releases (the
// pipeline encodes both; they are opaque here):
//
//	X/<order>\x00<exception>       exception record, open or closed (closed ones
//	                               expire with the order's retention)
//	Z/<order>\x00<deadline>        the clock of a deadline on an order, as
//	                               releases before the watches rode in the order
//	                               record wrote it: read once at start, moved
//	                               into the order records and deleted
//
// A partition dropped (DropPartition) takes both with it: its new owner
// rebuilds the watches from the events, and fires again what is overdue.
//
// Exception records are written by the pipeline batch alone, in the commit of
// the event or the timer that changed them.
const (
	pWatch     = "Z/"
	pException = "X/"
)

// PutWatch stores the clock of deadline on order in the form of earlier
// releases (Z/). orderwatch writes none any more: tests use it to write a
// store as an earlier release left it.
func (b *Batch) PutWatch(order, deadline string, v []byte) error {
	return b.set(key(pWatch, order, deadline), v)
}

// DeleteWatch removes the clock of deadline on order stored by an earlier
// release, once the order's record carries it.
func (b *Batch) DeleteWatch(order, deadline string) error {
	k := key(pWatch, order, deadline)
	b.count(pWatch)
	if b.txn == nil {
		b.staged = append(b.staged, staged{e: &badger.Entry{Key: k}, del: true})
		return nil
	}
	if err := b.txn.Delete(k); err != nil {
		return fmt.Errorf("store: delete deadline watch: %w", err)
	}
	return nil
}

// PutException stores an exception record of order under id; a ttl above
// zero lets it expire (a closed one).
func (b *Batch) PutException(order, id string, v []byte, ttl time.Duration) error {
	e := b.newEntry(b.key(pException, order, id), v)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return b.setEntry(e)
}

// Watches calls fn with every deadline watch stored by an earlier release
// (Z/), in key order (by order, then deadline).
func (s *Store) Watches(fn func(v []byte) error) error {
	return s.eachRecord(pWatch, "deadline watches", fn)
}

// Exception returns the exception record of order stored under id (the part
// of its key after the order), or nil when there is none.
func (s *Store) Exception(order, id string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if out, err = get(txn, key(pException, order, id)); errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read exception %s of order %s: %w", id, order, err)
	}
	return out, nil
}

// eachRecord calls fn with every value under prefix, in key order; v is valid
// during the call only. what names the records in errors.
func (s *Store) eachRecord(prefix, what string, fn func(v []byte) error) error {
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(prefix)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := it.Item().Value(fn); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read %s: %w", what, err)
	}
	return nil
}

// OrderExceptions returns the exception records of an order, by id.
func (s *Store) OrderExceptions(order string) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = values(txn, key(pException, order, ""), 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read exceptions of order %s: %w", order, err)
	}
	return out, nil
}

// ExceptionsPage returns up to limit exception records that match accepts, in
// key order (order, then exception id), starting after the position after (""
// for the first page), and the position of the last one returned when more may
// follow ("" on the last page). The records are read whole to be matched: the
// list is of exceptions, far fewer than orders.
func (s *Store) ExceptionsPage(after string, limit int, match func(v []byte) bool) ([][]byte, string, error) {
	return s.recordsPage(pException, "exceptions", after, limit, MaxPageScan, match)
}

// MaxPageScan bounds the records one page reads to find its matches: a filter
// that matches few of many records answers a short (even empty) page whose
// next position is the last record read, and the client pages on, instead of
// one request reading the whole keyspace.
const MaxPageScan = 10_000

// recordsPage returns up to limit records under prefix that match accepts
// (nil accepts all), in key order, starting after the key (past the prefix)
// after ("" for the first page), and the key of the last one returned, or of
// the last one read once scan were read, when more may follow ("" on the last
// page). what names the records in errors.
func (s *Store) recordsPage(prefix, what, after string, limit, scan int, match func(v []byte) bool) ([][]byte, string, error) {
	var out [][]byte
	var next, lastRead string
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(prefix)
		it := txn.NewIterator(o)
		defer it.Close()
		start := []byte(prefix)
		if after != "" {
			start = append([]byte(prefix+after), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			if after != "" && bytes.Equal(k[len(prefix):], []byte(after)) {
				continue
			}
			if scan <= 0 {
				next = lastRead
				return nil
			}
			scan--
			lastRead = string(k[len(prefix):])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if match != nil && !match(v) {
				continue
			}
			if len(out) == limit {
				return nil
			}
			out = append(out, v)
			next = string(k[len(prefix):])
		}
		next = ""
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: read %s: %w", what, err)
	}
	return out, next, nil
}

// keyOrder returns the order of a Z/ or X/ key.
func keyOrder(k []byte, prefix string) string {
	k = k[len(prefix):]
	if i := bytes.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	return string(k)
}
