// Allocation for Boost.Container in pure C++ code. The core allocates through a MemoryResource; the
// extension passes one backed by a Postgres memory context (src/pg/boundary.hpp), unit tests pass
// one backed by the C++ heap.
#pragma once

#include <cstddef>
#include <new>

#include <boost/container/flat_map.hpp>
#include <boost/container/vector.hpp>

namespace oban::core {

class MemoryResource {
public:
    virtual ~MemoryResource() = default;
    // Returns storage for `bytes` bytes or throws std::bad_alloc.
    virtual void *Allocate(std::size_t bytes) = 0;
    virtual void Deallocate(void *pointer) noexcept = 0;
};

// The C++ heap, for unit tests and for code that runs outside any memory context.
class HeapResource final : public MemoryResource {
public:
    void *Allocate(std::size_t bytes) override { return ::operator new(bytes); }
    void Deallocate(void *pointer) noexcept override { ::operator delete(pointer); }
};

// A stateful allocator over a MemoryResource.
template <typename T>
class Allocator {
public:
    using value_type = T;

    explicit Allocator(MemoryResource *resource) noexcept : resource_(resource) {}
    template <typename U>
    Allocator(const Allocator<U> &other) noexcept : resource_(other.resource()) {}

    T *allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
        return static_cast<T *>(resource_->Allocate(n * sizeof(T)));
    }
    void deallocate(T *pointer, std::size_t) noexcept { resource_->Deallocate(pointer); }

    MemoryResource *resource() const noexcept { return resource_; }
    template <typename U>
    bool operator==(const Allocator<U> &other) const noexcept {
        return resource_ == other.resource();
    }
    template <typename U>
    bool operator!=(const Allocator<U> &other) const noexcept {
        return resource_ != other.resource();
    }

private:
    MemoryResource *resource_;
};

template <typename T>
using Vector = boost::container::vector<T, Allocator<T>>;

}  // namespace oban::core
