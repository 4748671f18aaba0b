package cluster

import (
	"bytes"

	"go.uber.org/zap"
)

// logWriter adapts memberlist's line-oriented log output to zap. memberlist
// writes one "[LEVEL] memberlist: text" line per Write.
type logWriter struct {
	log *zap.Logger
}

func (w logWriter) Write(p []byte) (int, error) {
	n := len(p)
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		level, text := "", line
		if line[0] == '[' {
			if i := bytes.IndexByte(line, ']'); i > 0 {
				level = string(line[1:i])
				text = bytes.TrimSpace(line[i+1:])
			}
		}
		switch level {
		case "WARN", "ERR", "ERROR":
			w.log.Warn(string(text), zap.String("source", "memberlist"), zap.String("level", level))
		default:
			w.log.Debug(string(text), zap.String("source", "memberlist"), zap.String("level", level))
		}
	}
	return n, nil
}
