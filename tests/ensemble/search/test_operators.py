"""pymoo operators on masks, each on its own (no NSGA-II run)."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.core.population import Population
from pymoo.operators.crossover.hux import HUX
from pymoo.operators.crossover.pntx import TwoPointCrossover
from pymoo.operators.mutation.bitflip import BitflipMutation
from pymoo.operators.selection.rnd import RandomSelection

from ensemble.search import (
    Archive,
    ArchiveRecorder,
    BatchMating,
    MaskDuplicates,
    MaskProblem,
    SizeRepair,
    SparseSampling,
    hv_reference,
    random_masks,
    size_repair,
)
from ensemble.search.operators import initial_size_cap, make_crossover, make_mutation, mask_keys


def test_random_masks_sizes_and_seed():
    X = random_masks(2000, 9, 2, 5, np.random.default_rng(0))
    assert X.shape == (2000, 9) and X.dtype == bool
    sizes = X.sum(1)
    assert set(np.unique(sizes)) == {2, 3, 4, 5}
    assert 0.1 < X.mean(0).min() and X.mean(0).max() < 0.5  # every member drawn, none favoured much
    np.testing.assert_array_equal(X, random_masks(2000, 9, 2, 5, np.random.default_rng(0)))


def test_size_repair_moves_sizes_to_the_nearest_bound_only():
    rng = np.random.default_rng(0)
    X = rng.random((500, 12)) < rng.random((500, 1))
    Y = size_repair(X, 3, 6, rng)
    size_x, size_y = X.sum(1), Y.sum(1)
    ok = (size_x >= 3) & (size_x <= 6)
    np.testing.assert_array_equal(Y[ok], X[ok])
    assert (size_y[size_x < 3] == 3).all() and (size_y[size_x > 6] == 6).all()
    assert (Y[size_x < 3] >= X[size_x < 3]).all()  # small: members kept, some added
    assert (Y[size_x > 6] <= X[size_x > 6]).all()  # large: members dropped, none added
    assert X is not Y and (X.sum(1) == size_x).all()  # input unchanged


def test_initial_size_cap():
    assert initial_size_cap(110, 2, 110) == 21  # ceil(2 * sqrt(110))
    assert initial_size_cap(110, 2, 10) == 10
    assert initial_size_cap(4, 4, 4) == 4


def test_sparse_sampling_and_density(toy):
    tables = toy[2]
    problem = MaskProblem(Archive(tables, 2, tables.n_generators, hv_reference(tables)))
    X = SparseSampling(2, 13)._do(problem, 400, random_state=np.random.default_rng(0))
    assert X.shape == (400, 13) and X.sum(1).min() == 2 and X.sum(1).max() == initial_size_cap(13, 2, 13)
    D = SparseSampling(2, 13, init_density=0.5)._do(problem, 400, random_state=np.random.default_rng(0))
    assert 0.45 < D.mean() < 0.55


def test_mask_problem_evaluates_through_the_archive(toy):
    tables = toy[2]
    archive = Archive(tables, 2, tables.n_generators, hv_reference(tables))
    problem = MaskProblem(archive)
    assert (problem.n_var, problem.n_obj) == (13, 2)
    X = random_masks(10, 13, 2, 4, np.random.default_rng(0))
    F = problem.evaluate(X, return_as_dictionary=True)["F"]
    np.testing.assert_array_equal(F[:, 0], -tables.intra_d(X))
    assert archive.n_evals == 10 and (archive.evaluated()[3] == 1).all()


def test_size_repair_operator_uses_its_seed_without_a_random_state():
    X = np.zeros((20, 8), bool)
    a = SizeRepair(2, 3, seed=5)._do(None, X)
    b = SizeRepair(2, 3, seed=5)._do(None, X)
    c = SizeRepair(2, 3, seed=5)._do(None, X, random_state=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert (a.sum(1) == 2).all() and (c.sum(1) == 2).all() and not (a == c).all()


def test_mask_duplicates_within_and_against_another_population():
    X = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], bool)
    pop = Population.new(X=X)
    assert list(MaskDuplicates().do(pop, return_indices=True)[2]) == [2]
    other = Population.new(X=X[[3]])
    kept = MaskDuplicates().do(pop, other)
    assert [list(map(int, ind.X)) for ind in kept] == [[1, 0, 1], [0, 1, 1]]
    assert len(set(mask_keys(pop))) == 3 and mask_keys(Population()) == []


def test_batch_mating_breeds_a_full_population(toy):
    tables = toy[2]
    problem = MaskProblem(Archive(tables, 2, tables.n_generators, hv_reference(tables)))
    pop = Population.new(X=random_masks(10, 13, 2, 4, np.random.default_rng(0)))
    mating = BatchMating(RandomSelection(), TwoPointCrossover(), BitflipMutation(prob=1.0),
                         min_offsprings=30)
    off = mating._do(problem, pop, 4, random_state=np.random.default_rng(0))
    assert len(off) >= 30


def test_archive_recorder_closes_generations(toy):
    tables = toy[2]
    archive = Archive(tables, 2, tables.n_generators, hv_reference(tables))
    problem = MaskProblem(archive)

    class Algo:
        n_gen = 4

    ArchiveRecorder(archive, problem).notify(Algo())
    assert problem.gen == 5 and archive.history[-1]["n_gen"] == 4


def test_crossover_and_mutation_makers():
    assert isinstance(make_crossover("two-point"), TwoPointCrossover)
    assert isinstance(make_crossover("hux"), HUX)
    with pytest.raises(ValueError, match="two-point, hux"):
        make_crossover("uniform")
    m = make_mutation(0.25)
    assert isinstance(m, BitflipMutation)
