-- Scripted psql session run direct and through the proxy by TestPsqlSession; the two outputs
-- must be identical. Runs with -X -q -v ON_ERROR_STOP=0 in a scratch working directory.
drop table if exists psql_line, psql_order, psql_copy;

create table psql_order (
    id    int primary key,
    buyer text not null,
    made  timestamptz not null default '2024-01-02 03:04:05+00'
);
create table psql_line (
    order_id int not null references psql_order (id) on delete cascade,
    n        int not null,
    sku      text,
    qty      numeric(10, 2),
    primary key (order_id, n)
);
create index psql_line_sku on psql_line (sku);
create table psql_copy (a int, b text, c bytea);

\d
\d psql_line
\di psql_line_sku

-- A transaction that is rolled back keeps nothing.
begin;
insert into psql_order (id, buyer) values (1, 'ann');
insert into psql_line values (1, 1, 'x-1', 2.5);
select count(*) from psql_line;
rollback;
select (select count(*) from psql_order) as orders, (select count(*) from psql_line) as lines;

-- COPY FROM STDIN with inline data, then COPY TO STDOUT.
copy psql_order (id, buyer) from stdin;
1	ann
2	bob
3	"quoted"
\.
copy psql_line from stdin with (format csv);
1,1,x-1,2.5
1,2,,
2,1,"y,2",10
\.
copy psql_order to stdout;
copy (select * from psql_line order by order_id, n) to stdout with (format csv, header);

-- An error in the middle: psql reports it and goes on.
insert into psql_line values (9, 1, 'no-order', 1);
select 1 / 0;
select 'still running' as status;

-- \copy both ways through a file in the working directory.
insert into psql_copy values (1, 'tab	and \ backslash', '\x00ff'), (2, null, null), (3, 'é', '');
\copy psql_copy to 'psql_copy.out'
truncate psql_copy;
\copy psql_copy from 'psql_copy.out'
\copy (select a, b from psql_copy order by a) to stdout with csv
\copy psql_copy (a, b) from stdin
4	from stdin
\.
select a, b, c from psql_copy order by a;

-- SET and SHOW across transactions.
set application_name = 'psql-session';
set search_path = nosuch, public;
set datestyle = 'SQL, DMY';
show application_name;
show search_path;
begin;
show datestyle;
select made from psql_order where id = 1;
commit;
reset datestyle;
show datestyle;
select current_setting('application_name') as app;

-- Several statements on one line, and one query string holding several statements.
select 1 as one; select 2 as two; select 3 as three;
select 'a' as first \; select 'b' as second \; select count(*) as orders from psql_order;
insert into psql_copy values (5) \; select 1 / 0 \; insert into psql_copy values (6);
select count(*) as after_failed_multi from psql_copy where a >= 5;

-- Prepared statements through SQL.
prepare q(int) as select buyer from psql_order where id = $1;
execute q(2);
deallocate q;
execute q(2);
deallocate never_prepared;

drop table psql_line, psql_order, psql_copy;
