package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// NodeMeta is the metadata every node publishes with its gossip alive
// messages. Its JSON encoding must fit in memberlist.MetaMaxSize (512) bytes.
type NodeMeta struct {
	Name      string `json:"n,omitempty"`
	Region    string `json:"r,omitempty"`
	Version   string `json:"v,omitempty"`
	PgAddr    string `json:"pg,omitempty"`
	AdminAddr string `json:"adm,omitempty"`
	// Epoch is the shard-map epoch the node currently serves.
	Epoch int64 `json:"e,omitempty"`
	// LeaseOK says whether the node holds a valid lease on its map.
	LeaseOK bool `json:"l,omitempty"`
	// Ready says whether the node accepts client traffic.
	Ready bool `json:"rd,omitempty"`
}

// Encode returns the compact encoding of m, or an error when it exceeds
// memberlist.MetaMaxSize. It never truncates.
func (m NodeMeta) Encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode node meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: encode node meta: %d bytes exceeds the %d-byte limit", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// DecodeNodeMeta decodes what NodeMeta.Encode produced.
func DecodeNodeMeta(b []byte) (NodeMeta, error) {
	var m NodeMeta
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return NodeMeta{}, fmt.Errorf("cluster: decode node meta: %w", err)
	}
	return m, nil
}
