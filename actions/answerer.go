package actions

// ServiceAnswerer is who the trail records for a machine client of the shared
// API token: the token names no person, so the trail does not pretend one.
const ServiceAnswerer = "service"

// Answerer is who answers a waiting decision or turns the kill switch, as the
// trail records it.
type Answerer struct {
	// By is who answers: a signed-in user's name, or ServiceAnswerer for a
	// machine client of the shared token.
	By string
	// OnBehalfOf is whom a machine client says it answers for (the "by" of its
	// request): recorded beside By, never in its place, as it is not verified.
	OnBehalfOf string
	// May reports whether the answerer may answer a decision that waits on
	// team; nil lets it answer for every team (admins, the service).
	May func(team string) bool
}

// mayAnswer reports whether a may answer a wait on team.
func (a *Answerer) mayAnswer(team string) bool { return a.May == nil || a.May(team) }
