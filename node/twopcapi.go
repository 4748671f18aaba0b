package node

import (
	"context"
	"net/http"

	"github.com/shardwire/shardwire/admin"
)

// Transactions implements admin.API: the two-phase decision log and the prepared
// transactions on the groups' writers.
func (n api) Transactions(ctx context.Context) (admin.TransactionsStatus, error) {
	st := admin.TransactionsStatus{Node: n.cfg.NodeName, Records: []admin.TransactionRecord{}, InDoubt: []admin.InDoubtBranch{}}
	lg, rec := n.proxy.TwoPhaseLog(), n.proxy.TwoPhaseRecovery()
	if lg == nil || rec == nil {
		return st, nil
	}
	st.Enabled = true
	records, err := lg.List(ctx)
	if err != nil {
		return st, admin.Errorf(http.StatusServiceUnavailable, admin.CodeUnavailable, "read the decision log: %v", err)
	}
	for _, r := range records {
		st.Records = append(st.Records, admin.TransactionRecord{GID: r.GID, Node: r.Node, Database: r.Database, User: r.User,
			Groups: r.Groups, State: string(r.State), Created: r.Created, Updated: r.Updated})
	}
	branches, err := rec.InDoubt(ctx)
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
	}
	for _, b := range branches {
		st.InDoubt = append(st.InDoubt, admin.InDoubtBranch{Group: b.Group, GID: b.GID, Database: b.Database, Owner: b.Owner,
			Prepared: b.Prepared, State: string(b.State)})
	}
	return st, nil
}
