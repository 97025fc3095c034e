package process

import (
	"github.com/orderwatch/orderwatch/store"
)

// eventSeq is Batch.EventSeq seen through the markers of this batch and of the
// one committing.
func (p *Processor) eventSeq(batch *store.Batch, part int, id string) (uint64, bool, error) {
	k := partID{part, id}
	if seq, ok := p.ids[k]; ok {
		return seq, true, nil
	}
	if p.flight != nil {
		if seq, ok := p.flight.st.ids[k]; ok {
			return seq, true, nil
		}
	}
	return batch.EventSeq(part, id)
}

// seqDone is Batch.SeqCommitted seen through the markers of this batch and of
// the one committing.
func (p *Processor) seqDone(batch *store.Batch, part int, seq uint64) (bool, error) {
	k := partSeq{part, seq}
	if p.seqs[k] || (p.flight != nil && p.flight.st.seqs[k]) {
		return true, nil
	}
	return batch.SeqCommitted(part, seq)
}

// claimSeq reports whether the message at seq was handled by a committed (or
// committing) batch, a redelivery; if not, it marks it as handled by this one. On
// an error the batch fails, so the result it leaves does not matter.
func (p *Processor) claimSeq(batch *store.Batch, part int, seq uint64) (bool, error) {
	done, err := p.seqDone(batch, part, seq)
	if err != nil || done {
		return done, err
	}
	if err := batch.MarkSeq(part, seq); err != nil {
		return false, err
	}
	p.seqs[partSeq{part, seq}] = true
	return false, nil
}

// partID and partSeq key the markers of a batch by partition, as the stored
// ones are: a context message is read by the follower and by the account, each
// with markers of its own.
type (
	partID struct {
		part int
		id   string
	}
	partSeq struct {
		part int
		seq  uint64
	}
)
