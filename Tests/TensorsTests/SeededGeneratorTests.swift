import Foundation
import Tensors
import Testing

@Suite("SeededGenerator")
struct SeededGeneratorTests {
    func draws(_ generator: SeededGenerator, _ count: Int = 16) -> [UInt64] {
        var generator = generator
        return (0..<count).map { _ in generator.next() }
    }

    @Test("the same seed gives the same stream; another seed another")
    func determinism() {
        #expect(draws(SeededGenerator(seed: 42)) == draws(SeededGenerator(seed: 42)))
        #expect(draws(SeededGenerator(seed: 42)) != draws(SeededGenerator(seed: 43)))
        #expect(SeededGenerator(seed: 0) != SeededGenerator(seed: 1))
        #expect(Set(draws(SeededGenerator(seed: 0), 1000)).count == 1000, "seed 0 is not degenerate")
    }

    @Test("each purpose gets its own stream, reproducible from the seed")
    func purposeSeparation() {
        let purposes = ["init", "shuffle", "dropout", "augmentation", "dropout.1", "dropout.2"]
        let streams = purposes.map { draws(SeededGenerator(seed: 7, purpose: $0)) }
        #expect(Set(streams).count == purposes.count)
        for (purpose, stream) in zip(purposes, streams) {
            #expect(draws(SeededGenerator(seed: 7, purpose: purpose)) == stream, "\(purpose)")
            #expect(draws(SeededGenerator(seed: 8, purpose: purpose)) != stream, "\(purpose) depends on the seed")
        }
        #expect(!streams.contains(draws(SeededGenerator(seed: 7))), "a purpose differs from the bare seed")

        // Drawing from one purpose's generator leaves the others' streams where they were.
        var initGenerator = SeededGenerator(seed: 7, purpose: "init")
        var shuffleGenerator = SeededGenerator(seed: 7, purpose: "shuffle")
        for _ in 0..<100 { _ = initGenerator.next() }
        #expect(shuffleGenerator.next() == streams[1][0])
    }

    @Test("a generator encoded mid-stream resumes exactly where it was")
    func codableResume() throws {
        var generator = SeededGenerator(seed: 5, purpose: "shuffle")
        for _ in 0..<10 { _ = generator.next() }
        let data = try JSONEncoder().encode(generator)
        let restored = try JSONDecoder().decode(SeededGenerator.self, from: data)
        #expect(restored == generator)
        #expect(draws(restored) == draws(generator))
    }

    @Test("uniform draws stay in their interval")
    func uniformRange() {
        var generator = SeededGenerator(seed: 3)
        var sum = 0.0
        for _ in 0..<10_000 {
            let f = generator.nextFloat()
            #expect(f >= 0 && f < 1)
            let d = generator.nextDouble()
            #expect(d >= 0 && d < 1)
            let u = generator.uniform(-2, 3)
            #expect(u >= -2 && u <= 3)
            sum += Double(f)
        }
        #expect(abs(sum / 10_000 - 0.5) < 0.02)
    }

    @Test("normal draws have mean ≈ 0 and standard deviation ≈ 1 over 100 000 draws")
    func normalMoments() {
        var generator = SeededGenerator(seed: 11, purpose: "init")
        let count = 100_000
        var sum = 0.0
        var sumOfSquares = 0.0
        var beyondThreeSigma = 0
        for _ in 0..<count {
            let x = Double(generator.normal())
            #expect(x.isFinite)
            sum += x
            sumOfSquares += x * x
            if abs(x) > 3 { beyondThreeSigma += 1 }
        }
        let mean = sum / Double(count)
        let std = (sumOfSquares / Double(count) - mean * mean).squareRoot()
        // Standard errors: 1/√n ≈ 0.0032 for the mean, ≈ 0.0022 for the std; the bounds are ~6σ.
        #expect(abs(mean) < 0.02, "mean \(mean)")
        #expect(abs(std - 1) < 0.015, "std \(std)")
        // P(|x| > 3) = 0.0027: ≈ 270 of 100 000.
        #expect((150...400).contains(beyondThreeSigma), "\(beyondThreeSigma) beyond 3σ")
    }

    @Test("shuffle gives a permutation, the same one for the same seed")
    func shuffle() {
        var a = SeededGenerator(seed: 1, purpose: "shuffle")
        var b = SeededGenerator(seed: 1, purpose: "shuffle")
        var first = Array(0..<50)
        var second = Array(0..<50)
        a.shuffle(&first)
        b.shuffle(&second)
        #expect(first == second)
        #expect(first != Array(0..<50))
        #expect(first.sorted() == Array(0..<50))
        var single = [7]
        a.shuffle(&single)
        #expect(single == [7])
    }
}
