package control

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

func TestServerStreamsInboxAcrossChunks(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir, &store.Options{RetainRecords: 900})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 1000 records with retention 900: seqs 101..1000 remain, more than
	// one read chunk.
	var msgs []store.Message
	for i := 1; i <= 1000; i++ {
		msgs = append(msgs, store.Message{ReceivedAt: time.Now(), Topic: "t", Payload: []byte(fmt.Sprint(i))})
	}
	if _, err := db.Append(msgs); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(dir, db, func() any { return map[string]int{"x": 1} }, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, _ := os.Stat(filepath.Join(dir, SocketName))
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %o, want 660", fi.Mode().Perm())
	}

	collect := func(req Request) []uint64 {
		t.Helper()
		var seqs []uint64
		if err := Call(dir, req, func(r Reply) error { seqs = append(seqs, r.Record.Seq); return nil }); err != nil {
			t.Fatal(err)
		}
		return seqs
	}
	all := collect(Request{Cmd: CmdInboxExport})
	if len(all) != 900 || all[0] != 101 || all[899] != 1000 {
		t.Fatalf("export: %d records from %v to %v, want 900 from 101 to 1000", len(all), all[0], all[len(all)-1])
	}
	for i := 1; i < len(all); i++ {
		if all[i] != all[i-1]+1 {
			t.Fatalf("export out of order at %d", i)
		}
	}
	last := collect(Request{Cmd: CmdInboxExport, N: 300})
	if len(last) != 300 || last[0] != 701 || last[299] != 1000 {
		t.Fatalf("export -n 300: %d records from %d", len(last), last[0])
	}
	if l := collect(Request{Cmd: CmdInboxList}); len(l) != 20 || l[0] != 981 {
		t.Fatalf("list: %d records from %d, want the last 20", len(l), l[0])
	}
	if err := Call(dir, Request{Cmd: "nope"}, func(Reply) error { return nil }); err == nil {
		t.Fatal("unknown request answered without error")
	}
	// A second server on the same data_dir is refused while this one runs.
	if _, err := Listen(dir, db, nil, nil, nil); err == nil {
		t.Fatal("second Listen on a live socket succeeded")
	}
}
