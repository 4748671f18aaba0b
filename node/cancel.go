package node

import (
	"context"
	"encoding/binary"
	"fmt"

	"go.uber.org/zap"

	"github.com/shardwire/shardwire/cluster"
	"github.com/shardwire/shardwire/proxy"
)

// forwardCancel sends a CancelRequest whose key another node issued to that node: every alive
// member whose name hashes to the key's tag (usually one; the secret picks the session).
func (n *Node) forwardCancel(ctx context.Context, pid uint32, secret []byte) {
	tag := proxy.KeyTag(pid)
	body := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(secret)), pid)
	body = append(body, secret...)
	sent := false
	for _, m := range n.cluster.Members() {
		if m.State != cluster.StateAlive || m.Name == n.cfg.NodeName || proxy.NodeTag(m.Name) != tag {
			continue
		}
		if err := n.cluster.Send(ctx, m.Name, cancelKind, body); err != nil {
			n.cancelsForwarded.WithLabelValues("failed").Inc()
			n.log.Warn("forwarding a cancel request failed", zap.String("to", m.Name), zap.Error(err))
			continue
		}
		n.cancelsForwarded.WithLabelValues("sent").Inc()
		n.log.Debug("cancel request forwarded", zap.String("to", m.Name), zap.Uint32("pid", pid))
		sent = true
	}
	if !sent {
		n.cancelsForwarded.WithLabelValues("no_owner").Inc()
		n.log.Info("cancel request for a key no alive node issued", zap.Uint32("pid", pid))
	}
}

// handleCancel runs a cancel request another node forwarded: it cancels here or nowhere (a
// forwarded request is never forwarded again).
func (n *Node) handleCancel(from string, body []byte) error {
	if len(body) < 4 {
		return fmt.Errorf("cancel message from %s: %d bytes, want at least 4", from, len(body))
	}
	pid := binary.BigEndian.Uint32(body)
	n.proxy.CancelLocal(pid, body[4:])
	return nil
}
