//go:build !unix

package sinks

import (
	"context"
	"errors"

	"github.com/edge-agent/edge-agent/store"
)

func (e *execSink) run(context.Context, *store.Record) error {
	return errors.New("exec sinks run on Linux only")
}
