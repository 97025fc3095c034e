package pipeline

// NextCheckpoint exposes the rescoring schedule to the package's external tests.
var NextCheckpoint = nextCheckpoint
