package process

import (
	"github.com/orderwatch/orderwatch/store"
)

// eventSeq is Batch.EventSeq seen through the markers of this batch and of the
// one committing.
func (p *Processor) eventSeq(batch *store.Batch, id string) (uint64, bool, error) {
	if seq, ok := p.ids[id]; ok {
		return seq, true, nil
	}
	if p.flight != nil {
		if seq, ok := p.flight.st.ids[id]; ok {
			return seq, true, nil
		}
	}
	return batch.EventSeq(id)
}

// seqDone is Batch.SeqCommitted seen through the markers of this batch and of
// the one committing.
func (p *Processor) seqDone(batch *store.Batch, seq uint64) (bool, error) {
	if p.seqs[seq] || (p.flight != nil && p.flight.st.seqs[seq]) {
		return true, nil
	}
	return batch.SeqCommitted(seq)
}

// claimSeq reports whether the message at seq was handled by a committed (or
// committing) batch, a redelivery; if not, it marks it as handled by this one. On
// an error the batch fails, so the result it leaves does not matter.
func (p *Processor) claimSeq(batch *store.Batch, seq uint64) (bool, error) {
	done, err := p.seqDone(batch, seq)
	if err != nil || done {
		return done, err
	}
	if err := batch.MarkSeq(seq); err != nil {
		return false, err
	}
	p.seqs[seq] = true
	return false, nil
}
