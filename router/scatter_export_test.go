package router

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shardwire/shardwire/shardmap"
)

// PlanScatterSQL exposes planScatter to the external end-to-end test (scatter_e2e_test.go),
// which cannot live in this package because it imports proxy/merge.
func PlanScatterSQL(sql string, m *shardmap.Map) (*MergeSpec, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, err
	}
	spec, rerr := planScatter(tree.GetStmts()[0].GetStmt().GetSelectStmt(), m)
	if rerr != nil {
		return nil, rerr
	}
	return spec, nil
}
