package process

import "github.com/orderwatch/orderwatch/store"

// joinIncident groups an exception that has just opened with a Cause into the
// open incident of that cause (or opens one), setting x.Incident, in the batch
// that opens it. leaveIncident notes, in the batch that closes it, that it has
// closed.
//
// Contract between the parts of issue 18: the deadlines and data-quality parts
// call joinIncident before putException for every exception they open with a
// Cause, and leaveIncident before putException for every one they close that
// has an Incident; the incidents part owns this file and fills it in.
func (p *Processor) joinIncident(batch *store.Batch, x *Exception) error { return nil }

func (p *Processor) leaveIncident(batch *store.Batch, x *Exception) error { return nil }
