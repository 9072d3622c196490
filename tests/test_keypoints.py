from kpdet.keypoints import COCO_PERSON, KeypointSpec, flip_index_from_names


def test_coco_flip_pairs_from_names():
    # nose stays; left_eye(1) <-> right_eye(2); ... left_ankle(15) <-> right_ankle(16)
    assert COCO_PERSON.flip_index == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert COCO_PERSON.sigmas[0] == 0.026 and len(COCO_PERSON.skeleton) == 19


def test_flip_name_styles():
    assert flip_index_from_names(["snout", "leftear", "rightear", "tailbase"]) == [0, 2, 1, 3]
    assert flip_index_from_names(["l_hand", "head", "r_hand"]) == [2, 1, 0]
    assert flip_index_from_names(["Left_Eye", "Right_Eye"]) == [1, 0]
    assert flip_index_from_names(["left_only", "right_other"]) == [0, 1]  # no partner: itself


def test_from_coco_category_with_config_pairs_and_uniform_sigmas():
    category = {"keypoints": ["a", "b", "c"], "skeleton": [[1, 2], [2, 3]]}
    spec = KeypointSpec.from_coco_category(category, flip_pairs=[[0, 2]])
    assert spec.skeleton == ((0, 1), (1, 2))
    assert spec.flip_index == (2, 1, 0)
    assert spec.sigmas == (0.05, 0.05, 0.05)
