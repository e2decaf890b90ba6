#include "core/memory.hpp"

#include <gtest/gtest.h>

#include <new>

namespace {

// Counts what goes through it, and can be told to fail like an exhausted memory context.
class CountingResource final : public oban::core::MemoryResource {
public:
    void *Allocate(std::size_t bytes) override {
        if (fail) throw std::bad_alloc();
        ++live;
        return ::operator new(bytes);
    }
    void Deallocate(void *pointer) noexcept override {
        --live;
        ::operator delete(pointer);
    }
    int live = 0;
    bool fail = false;
};

}  // namespace

TEST(Allocator, BoostVectorAllocatesThroughTheResource) {
    CountingResource resource;
    {
        oban::core::Vector<int> numbers{oban::core::Allocator<int>(&resource)};
        for (int i = 0; i < 1000; i++) numbers.push_back(i);
        EXPECT_EQ(numbers[999], 999);
        EXPECT_GE(resource.live, 1);
    }
    EXPECT_EQ(resource.live, 0);
}

TEST(Allocator, FailureSurfacesAsBadAlloc) {
    CountingResource resource;
    resource.fail = true;
    oban::core::Vector<int> numbers{oban::core::Allocator<int>(&resource)};
    EXPECT_THROW(numbers.push_back(1), std::bad_alloc);
    EXPECT_EQ(resource.live, 0);
}

TEST(Allocator, OverflowingRequestIsRefused) {
    oban::core::HeapResource heap;
    oban::core::Allocator<double> allocator(&heap);
    EXPECT_THROW(allocator.allocate(static_cast<std::size_t>(-1) / 4), std::bad_alloc);
}
