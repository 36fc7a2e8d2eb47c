package main

import "github.com/edge-agent/edge-agent/cmd/internal/pl061trace"

// QEMU's PL061 trace, read by the package make hil and make system share.
type (
	event    = pl061trace.Event
	timeline = pl061trace.Timeline
)

var (
	parseTrace = pl061trace.Parse
	onLine     = pl061trace.OnLine
	levelAt    = pl061trace.LevelAt
	lastReset  = pl061trace.LastReset
	levels     = pl061trace.Levels
)
