package store

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppend measures durable appends (each commit fsyncs) of ~150-byte
// notifications: one Append per batch, as the agent's writer does.
func BenchmarkAppend(b *testing.B) {
	payload := []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","kind":"door","state":"open","at":"2025-03-01T12:00:00.123Z","site":"berlin-07","gateway":"gw1"}`)
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			db := openTest(b, nil)
			msgs := make([]Message, n)
			for i := range msgs {
				msgs[i] = Message{ReceivedAt: time.Now(), Topic: "edge/gw1/notify", Payload: payload}
			}
			b.SetBytes(int64(n * (len(payload) + len("edge/gw1/notify"))))
			for b.Loop() {
				if _, err := db.Append(msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
