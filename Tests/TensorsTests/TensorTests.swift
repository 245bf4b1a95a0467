import Tensors
import Testing

@Suite("Tensor")
struct TensorTests {
    @Test("reshape within capacity keeps the same storage and the values")
    func reshapeWithinCapacity() {
        let tensor = Tensor(shape: [4, 8])
        for i in 0..<tensor.count { tensor[i] = Float(i) }
        let base = tensor.storage.baseAddress
        tensor.reshape([2, 8])
        #expect(tensor.storage.baseAddress == base)
        #expect(tensor.pointer == base)
        #expect(tensor.shape == [2, 8])
        #expect(tensor.count == 16)
        #expect(tensor.capacity == 32)
        #expect(tensor.array == (0..<16).map(Float.init))
        tensor.reshape([32])
        #expect(tensor.storage.baseAddress == base)
        #expect(tensor.array == (0..<32).map(Float.init))
        #expect(tensor.rows == 32 && tensor.rowSize == 1)
    }

    @Test("a tensor made with extra capacity grows into it without reallocating")
    func extraCapacity() {
        let tensor = Tensor(shape: [2, 3], capacity: 30)
        #expect(tensor.count == 6)
        #expect(tensor.capacity == 30)
        let base = tensor.pointer
        tensor.reshape([10, 3])
        #expect(tensor.pointer == base)
        #expect(tensor.array.allSatisfy { $0 == 0 }, "storage starts zeroed")
        #expect(Tensor(shape: [5], capacity: 2).capacity == 5, "capacity is at least the count")
    }

    @Test("reshape beyond the capacity stops the process")
    func reshapeBeyondCapacity() async {
        await #expect(processExitsWith: .failure) {
            Tensor(shape: [2, 2]).reshape([5])
        }
    }

    @Test("ensureTensor allocates once, then reuses the buffer for equal or smaller shapes")
    func ensureTensorReuse() {
        var buffer: Tensor? = nil
        let first = ensureTensor(&buffer, shape: [8, 4])
        #expect(buffer === first)
        #expect(first.shape == [8, 4])
        let base = first.pointer

        let same = ensureTensor(&buffer, shape: [8, 4])
        #expect(same === first)
        let smaller = ensureTensor(&buffer, shape: [3, 4])
        #expect(smaller === first)
        #expect(smaller.pointer == base)
        #expect(smaller.shape == [3, 4])
        let reshaped = ensureTensor(&buffer, shape: [2, 16])
        #expect(reshaped === first, "same element count, other shape: still reused")
        #expect(reshaped.shape == [2, 16])

        let larger = ensureTensor(&buffer, shape: [9, 4])
        #expect(larger !== first)
        #expect(buffer === larger)
        #expect(larger.shape == [9, 4])
        #expect(ensureTensor(&buffer, shape: [8, 4]) === larger)
    }

    @Test("copy, clone, fill and zero work on the logical values")
    func copyAndClone() {
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        let clone = a.clone()
        clone[0] = 9
        #expect(a[0] == 1, "a clone owns its storage")
        #expect(clone.shape == [2, 2])

        let b = Tensor(shape: [3, 2], capacity: 12)
        b.copy(from: a)
        #expect(b.shape == [2, 2])
        #expect(b.array == [1, 2, 3, 4])

        let c = Tensor(shape: [4], capacity: 8)
        c.reshape([8]); c.fill(5); c.reshape([4])
        c.zero()
        c.reshape([8])
        #expect(c.array == [0, 0, 0, 0, 5, 5, 5, 5], "fill and zero touch only the logical values")
        #expect(Tensor(shape: [3], repeating: 2).array == [2, 2, 2])
    }

    @Test("a parameter's gradient has the value's shape and zeroes")
    func parameter() {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [2, 3], repeating: 1), isWeight: true)
        #expect(parameter.gradient.shape == [2, 3])
        #expect(parameter.count == 6)
        parameter.gradient.fill(3)
        parameter.zeroGradient()
        #expect(parameter.gradient.array == [0, 0, 0, 0, 0, 0])
        #expect(parameter.value.array == [1, 1, 1, 1, 1, 1])
    }
}
