package parse

import (
	"testing"
)

// benchParse parses the lines of the given files round-robin and reports
// lines/s (per core: the benchmark runs on one goroutine) and MB/s.
func benchParse(b *testing.B, format string, files ...string) {
	var lines [][]byte
	var size int64
	for _, f := range files {
		for _, l := range readLines(b, f) {
			lines = append(lines, l)
			size += int64(len(l))
		}
	}
	p := mustNew(b, format)
	ok := 0
	for _, l := range lines {
		if _, err := p.Parse(l); err == nil {
			ok++
		}
	}
	if ok == 0 {
		b.Fatal("no line parses")
	}
	b.SetBytes(size / int64(len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = p.Parse(lines[i%len(lines)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkParseSSHD(b *testing.B)   { benchParse(b, FormatSSHD, "OpenSSH_2k.log") }
func BenchmarkParseSyslog(b *testing.B) { benchParse(b, FormatSyslog, "Linux_2k.log") }
func BenchmarkParseAccess(b *testing.B) {
	benchParse(b, FormatAccess, "nginx-test-access.log", "apache-test-access-basic.log", "nginx-test-test-with-host.log")
}
func BenchmarkParseNetfilter(b *testing.B) { benchParse(b, FormatNetfilter, "test-iptables-raw.log") }

// EVE is measured on the alert file: every line maps to a record.
func BenchmarkParseEVE(b *testing.B) {
	benchParse(b, FormatEVE, "test-eve-alerts.log", "test-eve-6-0.log")
}
func BenchmarkParseAuto(b *testing.B) {
	benchParse(b, FormatAuto, "OpenSSH_2k.log", "nginx-test-access.log", "test-eve-alerts.log")
}
