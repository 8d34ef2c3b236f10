/* Diagnostic only: run a query through SPI_execute_with_args with a given tcount / read_only,
 * to see whether a parallel plan launches workers (the pgrx Spi::get_one_with_args path uses
 * read_only=false, tcount=1). */
#include "postgres.h"
#include "fmgr.h"
#include "executor/spi.h"
#include "utils/builtins.h"
PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(spiprobe);
Datum
spiprobe(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		tcount = PG_GETARG_INT64(1);
	bool		ro = PG_GETARG_BOOL(2);
	Oid			argtypes[1] = {INT8OID};
	Datum		vals[1] = {Int64GetDatum(1)};
	int			ret;
	int64		processed;

	SPI_connect();
	ret = SPI_execute_with_args(sql, 1, argtypes, vals, NULL, ro, tcount);
	processed = (int64) SPI_processed;
	SPI_finish();
	if (ret < 0)
		elog(ERROR, "SPI error %d", ret);
	PG_RETURN_INT64(processed);
}
