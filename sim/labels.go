package sim

import (
	"bufio"
	"io"
	"strconv"
)

// finish labels an order that is invoiced or cancelled.
func (s *Simulator) finish(o *order) {
	if o.labelled {
		return
	}
	o.labelled = true
	s.label(o, false)
}

// labelUnfinished labels the orders still open when a run stops at its horizon.
func (s *Simulator) labelUnfinished() {
	for i := range s.orders {
		o := &s.orders[i]
		if o.seq == 0 || o.labelled {
			continue
		}
		s.resolveOpen(o)
		o.labelled = true
		s.label(o, true)
	}
}

// label works out the ground truth of an order (see Label) and reports it.
func (s *Simulator) label(o *order, unfinished bool) {
	end := o.shipAt
	switch {
	case o.stage == stCancelled:
		end = o.endAt
	case end == 0 && unfinished:
		end = s.now
	}
	missed := end > o.cutoff
	cls := clsNone
	if missed {
		for c := clsCredit; c < clsInvoicing; c++ {
			if o.excAt[c] == 0 || o.excDelay[c] <= 0 {
				continue
			}
			if cls == clsNone || o.excDelay[c] > o.excDelay[cls] || o.excDelay[c] == o.excDelay[cls] && o.excAt[c] < o.excAt[cls] {
				cls = c
			}
		}
		if cls == clsNone {
			cls = clsWarehouse
		}
	} else {
		for c := clsCredit; c < numClasses; c++ {
			if c == clsWarehouse || o.excAt[c] == 0 {
				continue
			}
			if cls == clsNone || o.excAt[c] < o.excAt[cls] {
				cls = c
			}
		}
	}
	if !o.visible {
		return
	}
	st := &s.stats
	st.Labelled++
	st.Classes[cls]++
	if missed {
		st.Missed++
	}
	cancelled := o.stage == stCancelled
	if cancelled {
		st.Cancelled++
	}
	if s.opts.Labels == nil {
		return
	}
	var late int64
	if missed {
		late = (end - o.cutoff + msMinute - 1) / msMinute
	}
	var idb [48]byte
	s.opts.Labels(Label{
		OrderID:     string(s.appendOrderID(idb[:0], o)),
		Missed:      missed,
		MinutesLate: late,
		Class:       classNames[cls],
		Cancelled:   cancelled,
	})
}

// LabelWriter writes labels as CSV: a header line
// order_id,missed_cutoff,minutes_late,exception_class, then one row per order in
// the order the orders finished. It is not safe for concurrent use.
type LabelWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

// NewLabelWriter returns a LabelWriter on w and writes the header.
func NewLabelWriter(w io.Writer) *LabelWriter {
	lw := &LabelWriter{w: bufio.NewWriterSize(w, 64<<10)}
	_, lw.err = lw.w.WriteString("order_id,missed_cutoff,minutes_late,exception_class\n")
	return lw
}

// Write writes one label; errors are kept for Flush. Its method value is a LabelFunc.
func (lw *LabelWriter) Write(l Label) {
	if lw.err != nil {
		return
	}
	b := append(lw.buf[:0], l.OrderID...)
	b = append(b, ',')
	if l.Missed {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, l.MinutesLate, 10)
	b = append(b, ',')
	b = append(b, l.Class...)
	b = append(b, '\n')
	lw.buf = b
	_, lw.err = lw.w.Write(b)
}

// Flush writes what is buffered and returns the first error of any write.
func (lw *LabelWriter) Flush() error {
	if lw.err != nil {
		return lw.err
	}
	return lw.w.Flush()
}
