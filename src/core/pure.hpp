// Included first by every .cpp file in src/core: the pure C++ logic never sees Postgres headers,
// so it builds and is unit-tested on its own (test/unit). Headers in src/core include nothing from
// Postgres either; src/pg includes them after the Postgres headers.
#pragma once
#if defined(POSTGRES_H)
#error "src/core must not include Postgres headers"
#endif
