package pipeline

import "context"

// HoldLoop runs hold on the run loop between batches, when no batch is staged
// or in flight, and returns when hold does: meanwhile the loop stages, commits
// and acks nothing. The cut-off test stalls an instance with it across the end
// of its leases, as a long pause (GC, a slow disk) would.
func (p *Pipeline) HoldLoop(ctx context.Context, hold func()) error {
	return p.do(ctx, func() error { hold(); return nil })
}
