package router

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// funcCall notes a call of a function not known to be read-only, or not known to be
// immutable.
func (b *builder) funcCall(fc *pg.FuncCall) {
	var schema, name string
	switch names := fc.GetFuncname(); len(names) {
	case 1:
		name = names[0].GetString_().GetSval()
	case 2:
		schema, name = names[0].GetString_().GetSval(), names[1].GetString_().GetSval()
	default:
		b.info.unknownFunc, b.info.volatile = true, true
		return
	}
	if !b.immutableCall(schema, name) {
		b.info.volatile = true
	}
	builtin := (schema == "" || schema == "pg_catalog") && readOnlyFunction(name)
	if !builtin && !(b.m != nil && b.m.ReadOnlyFunctions[strings.ToLower(name)]) {
		b.info.unknownFunc = true
	}
}

// readOnlyFunction reports whether a built-in function is known to have no side effects and
// to work on a replica.
func readOnlyFunction(name string) bool {
	if strings.HasPrefix(name, "json_") || strings.HasPrefix(name, "jsonb_") {
		return true // every built-in JSON function is pure
	}
	_, ok := readOnlyFunctions[name]
	return ok
}

// readOnlyFunctions are the built-in functions (other than json_* and jsonb_*) a read may call.
// nextval, setval, currval, txid_current, pg_current_wal_lsn, set_config, the advisory lock
// functions and anything unknown make a statement a write.
var readOnlyFunctions = map[string]struct{}{
	// aggregates and window functions
	"count": {}, "sum": {}, "min": {}, "max": {}, "avg": {}, "array_agg": {}, "string_agg": {},
	"bool_and": {}, "bool_or": {}, "every": {}, "bit_and": {}, "bit_or": {}, "bit_xor": {},
	"stddev": {}, "stddev_pop": {}, "stddev_samp": {}, "variance": {}, "var_pop": {}, "var_samp": {},
	"percentile_cont": {}, "percentile_disc": {}, "mode": {}, "corr": {}, "covar_pop": {},
	"covar_samp": {}, "xmlagg": {}, "row_number": {}, "rank": {}, "dense_rank": {},
	"percent_rank": {}, "cume_dist": {}, "ntile": {}, "lag": {}, "lead": {}, "first_value": {},
	"last_value": {}, "nth_value": {}, "any_value": {},
	// conditionals and comparison
	"coalesce": {}, "nullif": {}, "greatest": {}, "least": {}, "num_nulls": {}, "num_nonnulls": {},
	// math
	"abs": {}, "ceil": {}, "ceiling": {}, "floor": {}, "round": {}, "trunc": {}, "sign": {},
	"sqrt": {}, "cbrt": {}, "power": {}, "pow": {}, "exp": {}, "ln": {}, "log": {}, "log10": {},
	"mod": {}, "div": {}, "pi": {}, "degrees": {}, "radians": {}, "sin": {}, "cos": {}, "tan": {},
	"asin": {}, "acos": {}, "atan": {}, "atan2": {}, "width_bucket": {}, "gcd": {}, "lcm": {},
	"random": {}, "scale": {}, "factorial": {},
	// strings
	"lower": {}, "upper": {}, "length": {}, "char_length": {}, "character_length": {},
	"octet_length": {}, "bit_length": {}, "substr": {}, "substring": {}, "position": {},
	"strpos": {}, "trim": {}, "btrim": {}, "ltrim": {}, "rtrim": {}, "lpad": {}, "rpad": {},
	"replace": {}, "concat": {}, "concat_ws": {}, "format": {}, "left": {}, "right": {},
	"reverse": {}, "repeat": {}, "split_part": {}, "initcap": {}, "md5": {}, "sha224": {},
	"sha256": {}, "sha384": {}, "sha512": {}, "encode": {}, "decode": {}, "to_hex": {},
	"ascii": {}, "chr": {}, "regexp_replace": {}, "regexp_match": {}, "regexp_matches": {},
	"regexp_like": {}, "regexp_count": {}, "regexp_substr": {}, "regexp_instr": {},
	"regexp_split_to_array": {}, "regexp_split_to_table": {}, "starts_with": {},
	"translate": {}, "quote_ident": {}, "quote_literal": {}, "quote_nullable": {},
	"string_to_array": {}, "array_to_string": {}, "overlay": {}, "normalize": {},
	"unistr": {}, "convert_from": {}, "convert_to": {}, "to_ascii": {},
	// dates and times
	"now": {}, "clock_timestamp": {}, "statement_timestamp": {}, "transaction_timestamp": {},
	"timeofday": {}, "date_trunc": {}, "date_part": {}, "extract": {}, "age": {},
	"make_date": {}, "make_time": {}, "make_timestamp": {}, "make_timestamptz": {},
	"make_interval": {}, "to_char": {}, "to_date": {}, "to_timestamp": {}, "to_number": {},
	"isfinite": {}, "justify_days": {}, "justify_hours": {}, "justify_interval": {},
	"date_bin": {}, "timezone": {}, "date_add": {}, "date_subtract": {},
	// arrays and sets
	"array_length": {}, "array_upper": {}, "array_lower": {}, "cardinality": {}, "unnest": {},
	"array_append": {}, "array_prepend": {}, "array_cat": {}, "array_position": {},
	"array_positions": {}, "array_remove": {}, "array_replace": {}, "array_dims": {},
	"array_ndims": {}, "array_fill": {}, "array_sample": {}, "array_shuffle": {}, "trim_array": {},
	"generate_series": {}, "generate_subscripts": {},
	// JSON constructors that do not start with json_ or jsonb_
	"to_json": {}, "to_jsonb": {}, "row_to_json": {}, "array_to_json": {},
	// system information
	"pg_sleep": {}, "current_setting": {}, "version": {}, "pg_backend_pid": {},
	"current_database": {}, "current_schema": {}, "current_schemas": {}, "current_catalog": {},
	"current_user": {}, "session_user": {}, "pg_typeof": {}, "format_type": {},
	"to_regclass": {}, "to_regtype": {}, "to_regproc": {}, "to_regnamespace": {},
	"obj_description": {}, "col_description": {}, "shobj_description": {},
	"pg_get_expr": {}, "pg_get_indexdef": {}, "pg_get_constraintdef": {}, "pg_get_viewdef": {},
	"pg_get_functiondef": {}, "pg_get_userbyid": {}, "pg_get_serial_sequence": {},
	"pg_encoding_to_char": {}, "pg_table_size": {}, "pg_total_relation_size": {},
	"pg_relation_size": {}, "pg_indexes_size": {}, "pg_database_size": {}, "pg_size_pretty": {},
	"pg_column_size": {}, "has_table_privilege": {}, "has_schema_privilege": {},
	"has_database_privilege": {}, "has_column_privilege": {}, "has_function_privilege": {},
	"pg_has_role": {}, "pg_is_in_recovery": {}, "pg_last_wal_replay_lsn": {},
	"pg_postmaster_start_time": {}, "inet_client_addr": {}, "inet_server_addr": {},
	"pg_table_is_visible": {}, "pg_type_is_visible": {}, "pg_function_is_visible": {},
	"gen_random_uuid": {}, "uuidv4": {},
	// casts written as calls
	"int2": {}, "int4": {}, "int8": {}, "float4": {}, "float8": {}, "numeric": {}, "text": {},
	"varchar": {}, "bool": {}, "date": {}, "timestamp": {}, "timestamptz": {}, "interval": {},
}
