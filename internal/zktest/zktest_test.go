package zktest

import (
	"net"
	"testing"
	"time"
)

func TestStartServesAndStops(t *testing.T) {
	s := Start(t)
	if !s.ready() {
		t.Fatal("server not serving after Start")
	}
	s.Stop()
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Fatal("port still open after Stop")
	}
}
