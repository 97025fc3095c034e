package actions

import "errors"

// ErrNotFound is returned by the Governor when no decision has the id.
var ErrNotFound = errors.New("actions: no such decision")

// ErrNotWaiting is returned by the Governor when the decision does not wait for
// what was asked: it is not pending approval (approve, reject) or not awaiting an
// acknowledgement (ack), usually because someone else acted first. The error
// message says what the decision's state is.
var ErrNotWaiting = errors.New("actions: not waiting")

// ErrHalted is returned by Governor.Approve while a kill switch is on: nothing may
// be executed, so nothing is approved.
var ErrHalted = errors.New("actions: kill switch is on, nothing is executed")

// ErrBusy is returned when a change kept conflicting with concurrent changes of the
// same decision; the caller may try again.
var ErrBusy = errors.New("actions: decision changed concurrently, try again")

// ErrBadScorePoint is returned by ScorePoint.UnmarshalBinary for bytes that are
// no stored score point: damaged, cut short, or of a form this version does not
// know. The message says where and what.
var ErrBadScorePoint = errors.New("actions: malformed score point")

// ErrBadRecord is returned by the encoders of stored records (decisions, commands,
// open items, score points) for a value they do not store: a number that is NaN or
// infinite, a time outside the years 0..9999 or with a zone offset of a day or
// more, a string or a map longer than the record's limit. The message names the
// field; the value was made wrong upstream (a model's output, a policy, a request).
var ErrBadRecord = errors.New("actions: value out of a stored record's bounds")

// ErrDuplicate is returned by a PublishFunc when the stream acknowledged the
// command as a duplicate of an earlier publish with the same msgID (a JetStream
// PubAck with Duplicate set): the command is in the stream, from that earlier
// publish, and this one was dropped. The executor records the delivery done and
// counts it deduplicated, not published.
var ErrDuplicate = errors.New("actions: publish deduplicated by the stream")

// ErrForbidden is returned by the Governor when the answerer may not answer the
// decision: it waits on a team the answerer does not approve for. The check is
// made in the commit that answers, so a wait that moved to another team (an
// escalation) since the caller looked is refused, not answered by the wrong
// team. The message names the team.
var ErrForbidden = errors.New("actions: not an approver of the team the decision waits on")
